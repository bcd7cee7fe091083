import { cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { collectOutput, cronEntryId, type Platform } from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPlatform, sampleApp } from "./index.js";

const app = `hf-${process.pid.toString(36)}`;
let dataDir: string;
let platform: Platform;
const sources: string[] = [];

/** A copy of the sample app with some files replaced. */
async function source(changes: Record<string, string | null> = {}) {
  const dir = await temporaryDirectory("berth-heroku-app-");
  sources.push(dir);
  await cp(sampleApp, dir, { recursive: true });
  for (const [name, content] of Object.entries(changes)) {
    if (content === null) await rm(join(dir, name), { force: true });
    else await writeFile(join(dir, name), content);
  }
  return { kind: "dir" as const, dir };
}

async function deploy(changes: Record<string, string | null> = {}) {
  const { output, text } = collectOutput();
  try {
    const release = await platform.deploy(app, await source(changes), { output });
    return { release, text: text() };
  } catch (error) {
    return { error, text: text() };
  }
}

async function webBodies(): Promise<string[]> {
  const instances = (await platform.ps.status(app)).filter((instance) => instance.processType === "web");
  return Promise.all(
    instances.map(async (instance) => {
      const response = await fetch(`http://127.0.0.1:${instance.endpoint?.port}/`);
      return response.text();
    }),
  );
}

/** Lines of command output (7-space detail) that start with `needle`, not the step lines that echo commands. */
const count = (text: string, needle: string) =>
  text.split("\n").filter((line) => line.startsWith(`       ${needle}`)).length;

beforeAll(async () => {
  dataDir = await temporaryDirectory();
  platform = createPlatform({ dataDir, checks: { uptime: 1, webTimeout: 20 } });
  await platform.apps.create(app);
});

afterAll(async () => {
  platform.cron.stop();
  await platform.cron.idle();
  if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  await rm(dataDir, { recursive: true, force: true });
  await Promise.all(sources.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("an app written for Heroku/Dokku, on the real engine", () => {
  it("fails before the build when a required var is missing, naming it", async () => {
    const { error, text } = await deploy();
    expect(error).toMatchObject({
      code: "CONFIG_REQUIRED_MISSING",
      message: expect.stringContaining("API_KEY"),
    });
    expect(text).not.toMatch(/Building/);
    expect(await platform.releases.list(app)).toEqual([]);
  });

  it("rejects malformed app.json and Procfile variants with precise errors, changing nothing", async () => {
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [
        { Procfile: "web: sh /srv/web.sh\nweb: again\n" },
        "PROCFILE_INVALID",
        /Procfile line 2: process type web is already defined on line 1/,
      ],
      [{ Procfile: "web sh /srv/web.sh\n" }, "PROCFILE_INVALID", /Procfile line 1/],
      [
        { "app.json": '{ "formation": { "web": { "quantity": "two" } } }' },
        "APP_JSON_INVALID",
        /formation\.web\.quantity/,
      ],
      [
        { "app.json": '{ "cron": [{ "schedule": "every minute", "command": "x" }] }' },
        "APP_JSON_INVALID",
        /cron\[0\]\.schedule/,
      ],
      [{ "app.json": '{\n  "scripts": {\n    "dokku": \n  }\n}' }, "APP_JSON_INVALID", /line 4/],
    ];
    for (const [changes, code, message] of cases) {
      const { error } = await deploy(changes);
      expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
    }
    expect(await platform.releases.list(app)).toEqual([]);
    expect(await platform.ps.status(app)).toEqual([]);
  });

  it("deploys: predeploy committed into the image, release phase once, formation, content check, postdeploy after the switch", async () => {
    await platform.config.set(app, { API_KEY: "key-1" });
    const { release, text, error } = await deploy();
    expect(error).toBeUndefined();
    expect(release?.id).toBe("v1");
    // app.json env: defaults applied, secret generated once and kept.
    expect(release?.config).toMatchObject({ GREETING: "hello", API_KEY: "key-1" });
    expect(release?.config.SESSION_SECRET).toMatch(/^[0-9a-f]{64}$/);

    expect(count(text, `release-phase ran for`)).toBe(1);
    expect(text).toMatch(/release-phase ran for .* with GREETING=hello/);
    const order = [
      "Running predeploy",
      "Running release command",
      "Starting v1",
      "Checking new instances",
      "Running postdeploy",
      "postdeploy-ran-for-hello",
      "first-deploy-setup-ran",
    ];
    const positions = order.map((needle) => text.indexOf(needle));
    expect(positions.every((position) => position >= 0)).toBe(true);
    expect([...positions].sort((left, right) => left - right)).toEqual(positions);

    const status = await platform.ps.status(app);
    expect(status.filter((instance) => instance.processType === "web")).toHaveLength(2);
    expect(status.filter((instance) => instance.processType === "worker")).toHaveLength(1);
    expect(status.some((instance) => instance.processType === "release")).toBe(false);
    expect(await webBodies()).toEqual(["hello from predeploy-image", "hello from predeploy-image"]);
    // The file predeploy created is in the running web container's image.
    expect((await platform.run(app, "cat /srv/predeploy.txt")).exitCode).toBe(0);
  });

  it("runs the release phase once per deploy with the new config; scripts.postdeploy only after the first deploy", async () => {
    await platform.config.set(app, { GREETING: "howdy" }, { restart: false });
    const { release, text } = await deploy();
    expect(release?.id).toBe("v2");
    expect(count(text, "release-phase ran for")).toBe(1);
    expect(text).toMatch(/with GREETING=howdy/);
    expect(text).toMatch(/postdeploy-ran-for-howdy/);
    expect(text).not.toMatch(/first-deploy-setup-ran/);
    expect(await webBodies()).toEqual(["howdy from predeploy-image", "howdy from predeploy-image"]);
    const releases = await platform.releases.list(app);
    expect(releases[1]?.config.SESSION_SECRET).toBe(releases[0]?.config.SESSION_SECRET);
  });

  it("a failing release command aborts the deploy and the previous release keeps serving", async () => {
    const before = (await platform.ps.status(app)).map((instance) => instance.id).sort();
    const procfile = (await readFile(join(sampleApp, "Procfile"), "utf8")).replace(
      /^release: .*$/m,
      "release: echo migrating; exit 4",
    );
    const { error, text } = await deploy({ Procfile: procfile });
    expect(error).toMatchObject({ code: "RELEASE_PHASE_FAILED", message: expect.stringContaining("code 4") });
    expect(text).toMatch(/migrating/);
    expect(text).not.toMatch(/Starting v3/);
    expect((await platform.ps.status(app)).map((instance) => instance.id).sort()).toEqual(before);
    expect(await webBodies()).toEqual(["howdy from predeploy-image", "howdy from predeploy-image"]);
    expect((await platform.releases.get(app, "v3")).status).toBe("failed");
  });

  it("a content health check that does not match rejects the deploy, previous release serving", async () => {
    const appJson = JSON.parse(await readFile(join(sampleApp, "app.json"), "utf8"));
    appJson.healthchecks.web[0] = {
      ...appJson.healthchecks.web[0],
      content: "something else",
      attempts: 1,
      wait: 0,
      timeout: 1,
    };
    const { error } = await deploy({ "app.json": JSON.stringify(appJson) });
    expect(error).toMatchObject({ code: "CHECK_FAILED", message: expect.stringContaining("says hello") });
    expect(await webBodies()).toEqual(["howdy from predeploy-image", "howdy from predeploy-image"]);
    expect((await platform.apps.state(app)).currentRelease).toBe("v2");
  });

  it("runs cron entries in one-off containers, never overlapping one entry, with output in logs", async () => {
    const [job] = await platform.cron.list(app);
    const id = cronEntryId("*/5 * * * *", "sleep 2; echo cron-ran-with-$GREETING");
    expect(job).toMatchObject({ id, schedule: "*/5 * * * *", running: false });
    const skipped: string[] = [];
    platform.events.subscribe((event) => {
      if (event.type === "cron.skipped") skipped.push(String(event.data?.id));
    });
    // 10:05 matches */5; a second tick while the first run is still sleeping must not start another.
    const due = new Date(2026, 0, 5, 10, 5);
    await platform.cron.tick(due);
    expect((await platform.cron.list(app))[0]?.running).toBe(true);
    await platform.cron.tick(due);
    expect(skipped).toEqual([id]);
    await platform.cron.tick(new Date(2026, 0, 5, 10, 6)); // does not match
    await platform.cron.idle();
    const lines: string[] = [];
    await platform.logs(app, { processType: "cron" }, (line) => lines.push(`${line.source}: ${line.line}`));
    expect(lines).toEqual([`cron.${id}: cron-ran-with-howdy`]);
    expect((await platform.cron.list(app))[0]?.last?.exitCode).toBe(0);
  });
});
