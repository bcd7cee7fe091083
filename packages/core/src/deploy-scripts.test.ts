import { rm } from "node:fs/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cronEntryId, nextCronTime, parseCronSchedule } from "./cron.js";
import type { CronClock } from "./cron-jobs.js";
import { Platform } from "./platform.js";
import { sourceFrom, temporaryDirectory } from "./testing/conformance.js";
import { FakeBuilderPlugin, FakeProxyPlugin, FakeSchedulerPlugin } from "./testing/fakes.js";

const procfile = "web: serve\nworker: sleep\nrelease: echo migrate\n";
const appJson = {
  scripts: {
    dokku: { predeploy: "echo prepare", postdeploy: "echo after-switch" },
    postdeploy: "echo seed-once",
  },
  healthchecks: { web: [{ type: "startup", path: "/", content: "hello", attempts: 1, wait: 0, timeout: 1 }] },
  env: { MODE: { value: "production" }, API_KEY: { required: true } },
  formation: { web: { quantity: 2 }, worker: { quantity: 1 } },
  cron: [{ schedule: "* * * * *", command: "echo tick" }],
};

describe("release phase, app.json scripts, formation, cron", () => {
  let dataDir: string;
  let platform: Platform;
  let scheduler: FakeSchedulerPlugin["scheduler"];
  let proxy: FakeProxyPlugin["proxy"];
  const sources: string[] = [];
  const deploy = async (files: Record<string, string>) => {
    const source = await sourceFrom(files);
    sources.push(source.dir);
    return platform.deploy("shop", source);
  };

  beforeEach(async () => {
    dataDir = await temporaryDirectory();
    platform = new Platform({
      dataDir,
      defaults: { scheduler: "fake", proxy: "fake" },
      checks: { uptime: 0.1 },
    });
    const schedulerPlugin = new FakeSchedulerPlugin();
    const proxyPlugin = new FakeProxyPlugin();
    platform.use(new FakeBuilderPlugin()).use(schedulerPlugin).use(proxyPlugin);
    scheduler = schedulerPlugin.scheduler;
    proxy = proxyPlugin.proxy;
    await platform.apps.create("shop");
  });

  afterEach(async () => {
    platform.cron.stop();
    await platform.apps.destroy("shop").catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    await Promise.all(sources.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("a missing required var fails before the build, naming the var", async () => {
    const failure = deploy({ Procfile: procfile, "app.json": JSON.stringify(appJson), "body.txt": "hello" });
    await expect(failure).rejects.toMatchObject({
      code: "CONFIG_REQUIRED_MISSING",
      message: expect.stringContaining("API_KEY"),
    });
    expect((platform.builders.get("fake") as unknown as { builds: number }).builds).toBe(0);
  });

  it("runs predeploy, the release command once, then postdeploy scripts after the switch, with formation", async () => {
    await platform.config.set("shop", { API_KEY: "k1" });
    const order: string[] = [];
    platform.hooks.route.tapPromise("order", async () => void order.push("route"));
    scheduler.onRun = (command) => order.push(command);

    const first = await deploy({
      Procfile: procfile,
      "app.json": JSON.stringify(appJson),
      "body.txt": "hello v1",
    });
    expect(order).toEqual(["echo prepare", "echo migrate", "route", "echo after-switch", "echo seed-once"]);
    expect(first.artifact).toMatchObject({
      image: "fake/shop:v1-predeploy",
      metadata: { predeploy: "echo prepare" },
    });
    const migrate = scheduler.runs.find((run) => run.command === "echo migrate");
    expect(migrate).toMatchObject({ release: "v1", env: { API_KEY: "k1", MODE: "production" } });
    const running = scheduler.instances("shop");
    expect(running.filter((instance) => instance.processType === "web")).toHaveLength(2);
    expect(running.filter((instance) => instance.processType === "worker")).toHaveLength(1);
    expect(running.some((instance) => instance.processType === "release")).toBe(false);

    order.length = 0;
    await deploy({ Procfile: procfile, "app.json": JSON.stringify(appJson), "body.txt": "hello v2" });
    expect(order).toEqual(["echo prepare", "echo migrate", "route", "echo after-switch"]);
    expect(scheduler.runs.filter((run) => run.command === "echo migrate").map((run) => run.release)).toEqual([
      "v1",
      "v2",
    ]);

    // Config changes make a release and run the release phase too, as on Heroku.
    order.length = 0;
    await platform.config.set("shop", { API_KEY: "k2" });
    expect(order).toEqual(["echo migrate", "route"]);
  });

  it("a failing release command aborts the deploy and leaves the previous release serving", async () => {
    await platform.config.set("shop", { API_KEY: "k" });
    await deploy({ Procfile: procfile, "app.json": JSON.stringify(appJson), "body.txt": "hello stable" });
    const deploysBefore = scheduler.deploys;
    const broken = deploy({ Procfile: "web: serve\nrelease: exit 3\n", "body.txt": "hello broken" });
    await expect(broken).rejects.toMatchObject({
      code: "RELEASE_PHASE_FAILED",
      message: expect.stringContaining("code 3"),
    });
    expect(scheduler.deploys).toBe(deploysBefore);
    expect(await proxy.fetch("shop")).toEqual({ status: 200, body: "hello stable" });
    const releases = await platform.releases.list("shop");
    expect(releases.map((release) => release.status)).toEqual(["succeeded", "failed"]);
  });

  it("a failing predeploy stores no release and changes nothing", async () => {
    const failing = { ...appJson, env: {}, scripts: { dokku: { predeploy: "exit 1" } } };
    await expect(deploy({ Procfile: procfile, "app.json": JSON.stringify(failing) })).rejects.toMatchObject({
      code: "RELEASE_PHASE_FAILED",
    });
    expect(await platform.releases.list("shop")).toEqual([]);
    expect(scheduler.instances("shop")).toEqual([]);
  });

  it("a content health check that fails rejects the deploy", async () => {
    await platform.config.set("shop", { API_KEY: "k" });
    await expect(
      deploy({
        Procfile: "web: serve",
        "app.json": JSON.stringify({ ...appJson, scripts: {} }),
        "body.txt": "goodbye",
      }),
    ).rejects.toMatchObject({
      code: "CHECK_FAILED",
      message: expect.stringContaining('expected content "hello"'),
    });
  });

  it("deploys an existing artifact without a build", async () => {
    const release = await platform.deployArtifact("shop", {
      builder: "image",
      image: "fake/prebuilt:1",
      defaultProcessTypes: { web: "serve" },
      procfile: "web: serve\nrelease: echo from-image\n",
      metadata: { body: "prebuilt" },
    });
    expect(release).toMatchObject({
      id: "v1",
      status: "succeeded",
      source: { kind: "image", from: "fake/prebuilt:1" },
    });
    expect(scheduler.runs.map((run) => run.command)).toEqual(["echo from-image"]);
    expect(await proxy.fetch("shop")).toEqual({ status: 200, body: "prebuilt" });
  });

  it("runs cron entries at their schedule, never overlapping one entry, with output in logs", async () => {
    await platform.config.set("shop", { API_KEY: "k" });
    const cronApp = { ...appJson, scripts: {}, cron: [{ schedule: "*/2 * * * *", command: "echo tick" }] };
    await deploy({ Procfile: "web: serve", "app.json": JSON.stringify(cronApp), "body.txt": "hello" });
    const id = cronEntryId("*/2 * * * *", "echo tick");
    const timers: Array<{ at: number; callback: () => void }> = [];
    let now = new Date(2026, 0, 5, 10, 0, 30);
    const clock: CronClock = {
      now: () => now,
      setTimer: (callback, milliseconds) => {
        const timer = { at: now.getTime() + milliseconds, callback };
        timers.push(timer);
        return () => timers.splice(timers.indexOf(timer), 1);
      },
    };
    const advanceTo = async (target: Date) => {
      for (;;) {
        timers.sort((left, right) => left.at - right.at);
        const due = timers[0];
        if (!due || due.at > target.getTime()) break;
        timers.shift();
        now = new Date(due.at);
        due.callback();
        await platform.cron.ticked();
      }
      now = target;
    };

    let openGate: () => void = () => {};
    scheduler.runGate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    platform.cron.start(clock);
    expect((await platform.cron.list("shop"))[0]).toMatchObject({
      id,
      next: new Date(2026, 0, 5, 10, 2).toISOString(),
    });

    const skipped: string[] = [];
    platform.events.subscribe((event) => {
      if (event.type === "cron.skipped") skipped.push(String(event.data?.id));
    });
    const ticks = () => scheduler.runs.filter((run) => run.command === "echo tick").length;

    await advanceTo(new Date(2026, 0, 5, 10, 1, 30)); // 10:01 does not match */2
    expect((await platform.cron.list("shop"))[0]?.running).toBe(false);
    await advanceTo(new Date(2026, 0, 5, 10, 2, 30)); // 10:02 starts a run that stays busy
    expect((await platform.cron.list("shop"))[0]?.running).toBe(true);
    await expect(platform.cron.run("shop", id)).rejects.toMatchObject({ code: "CRON_BUSY" });
    await advanceTo(new Date(2026, 0, 5, 10, 4, 30)); // 10:04 is skipped: the 10:02 run is still going
    expect(skipped).toEqual([id]);
    openGate();
    scheduler.runGate = undefined;
    await platform.cron.idle();
    expect(ticks()).toBe(1);
    await advanceTo(new Date(2026, 0, 5, 10, 6, 30));
    await platform.cron.idle();
    expect(ticks()).toBe(2);
    expect(skipped).toEqual([id]);

    expect(await platform.cron.run("shop", id)).toBe(0);
    const lines: string[] = [];
    await platform.logs("shop", { processType: "cron" }, (line) => lines.push(`${line.source} ${line.line}`));
    expect(lines).toEqual([`cron.${id} tick`, `cron.${id} tick`, `cron.${id} tick`]);
    await expect(platform.cron.run("shop", "nope")).rejects.toMatchObject({ code: "CRON_NOT_FOUND" });
  });
});

describe("cron schedules", () => {
  it("computes next times with steps, ranges, names and the day-field OR rule", () => {
    const at = (text: string, from: Date) => nextCronTime(parseCronSchedule(text), from)?.toString();
    const base = new Date(2026, 0, 5, 10, 7, 12); // Monday 5 Jan 2026 10:07:12
    expect(at("*/15 * * * *", base)).toBe(new Date(2026, 0, 5, 10, 15).toString());
    expect(at("0 9-17/4 * * mon-fri", base)).toBe(new Date(2026, 0, 5, 13, 0).toString());
    expect(at("@daily", base)).toBe(new Date(2026, 0, 6, 0, 0).toString());
    expect(at("0 0 1 * sun", base)).toBe(new Date(2026, 0, 11, 0, 0).toString());
    expect(at("30 4 29 feb *", base)).toBe(new Date(2028, 1, 29, 4, 30).toString());
  });

  it.each(["* * * *", "60 * * * *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "@reboot", "a b c d e"])(
    "rejects %j",
    (text) =>
      expect(() => parseCronSchedule(text)).toThrow(expect.objectContaining({ code: "APP_JSON_INVALID" })),
  );
});
