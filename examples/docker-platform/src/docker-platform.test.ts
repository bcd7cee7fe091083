import { execFile } from "node:child_process";
import { rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { isBerthError, type LogLine, type Platform } from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDockerPlatform } from "./index.js";
import {
  containersOf,
  Docker,
  deploySample,
  get,
  imagesOf,
  poll,
  sampleSource,
  webEndpoints,
} from "./test-support/helpers.js";

const run = promisify(execFile);
const docker = new Docker();
const app = `dp-${process.pid.toString(36)}`;
let dataDir: string;
let platform: Platform;

const procfileWithCrashingWorker = "web: sh /srv/start.sh\nworker: echo crashing; exit 1\n";

async function serving(): Promise<string> {
  const [endpoint] = await webEndpoints(platform, app);
  return (await get(endpoint)).body;
}

/** Containers of the app that are not part of the deployment serving now. */
async function strayContainers(): Promise<string[]> {
  const current = (await platform.apps.state(app)).deployment?.id;
  const all = await containersOf(docker, [`berth.app=${app}`]);
  return all
    .filter((container) => container.Labels["berth.deployment"] !== current)
    .map((container) => container.Id);
}

async function latestRelease() {
  return (await platform.releases.list(app)).at(-1);
}

beforeAll(async () => {
  dataDir = await temporaryDirectory();
  platform = createDockerPlatform({
    dataDir,
    checks: { uptime: 1, webTimeout: 20 },
    scheduler: { stopGracePeriodSeconds: 2 },
  });
  await platform.apps.create(app);
});

afterAll(async () => {
  if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  await rm(dataDir, { recursive: true, force: true });
});

describe("a Dockerfile app on the Docker scheduler", () => {
  it("deploys v1 then v2 from the Dockerfile, and v1's containers are gone", async () => {
    const v1 = await deploySample(platform, app, "v1");
    expect(v1.id).toBe("v1");
    const [instance] = await platform.ps.status(app);
    expect(instance?.containerPort).toBe(8080);
    expect(instance?.endpoint?.host).toBe("127.0.0.1");
    expect(await get(instance?.endpoint)).toEqual({ status: 200, body: "v1" });

    await deploySample(platform, app, "v2");
    expect(await serving()).toBe("v2");
    expect(await containersOf(docker, [`berth.app=${app}`, "berth.release=v1"])).toEqual([]);
    expect(await strayContainers()).toEqual([]);
  });

  it("rejects a v3 that fails its health check while v2 answers every request during and after", async () => {
    const [endpoint] = await webEndpoints(platform, app);
    const answers: string[] = [];
    let deploying = true;
    const traffic = (async () => {
      let after = 0;
      while (deploying || after < 10) {
        const response = await get(endpoint).catch((error: unknown) => ({ status: 0, body: String(error) }));
        answers.push(`${response.status} ${response.body}`);
        if (!deploying) after += 1;
      }
    })();
    const appJson = {
      healthchecks: {
        web: [
          {
            type: "startup",
            name: "ready",
            path: "/",
            content: "v3-ready",
            attempts: 2,
            timeout: 1,
            wait: 0.5,
          },
        ],
      },
    };
    const failure = await deploySample(platform, app, "v3-broken", {
      "app.json": JSON.stringify(appJson),
    }).catch((error: unknown) => error);
    deploying = false;
    await traffic;
    expect(isBerthError(failure, "CHECK_FAILED")).toBe(true);
    expect((failure as Error).message).toContain("v3-ready");
    expect(answers.length).toBeGreaterThan(20);
    expect(new Set(answers)).toEqual(new Set(["200 v2"]));
    expect(await strayContainers()).toEqual([]);
    expect(await imagesOf(docker, [`berth.app=${app}`, "berth.release=v3"])).toEqual([]);
    expect(await serving()).toBe("v2");
  });

  it("rolls the whole deploy back when a worker crash-loops, leaving web v2 untouched", async () => {
    const before = await platform.ps.status(app);
    const failure = await deploySample(platform, app, "v4", {
      Procfile: procfileWithCrashingWorker,
      "app.json": JSON.stringify({ formation: { worker: { quantity: 1 } } }),
    }).catch((error: unknown) => error);
    expect(isBerthError(failure, "CHECK_FAILED")).toBe(true);
    expect((failure as Error).message).toMatch(/worker\.1 (restarted|exited)/);
    expect((await platform.ps.status(app)).map((instance) => instance.id)).toEqual(
      before.map((instance) => instance.id),
    );
    expect((await platform.ps.status(app))[0]?.restarts).toBe(0);
    expect(await strayContainers()).toEqual([]);
    expect(await serving()).toBe("v2");
    expect((await latestRelease())?.status).toBe("failed");
  });

  it("scales web to three answering instances, with logs from each, and back to one", async () => {
    await platform.ps.scale(app, { web: 3 });
    const endpoints = await webEndpoints(platform, app);
    expect(new Set(endpoints.map((endpoint) => endpoint.port)).size).toBe(3);
    for (const endpoint of endpoints) expect(await get(endpoint)).toEqual({ status: 200, body: "v2" });

    const lines: LogLine[] = [];
    await platform.logs(app, { processType: "web" }, (line) => lines.push(line));
    for (const index of [1, 2, 3]) {
      expect(lines).toContainEqual(
        expect.objectContaining({ source: `web.${index}`, line: `started web.${index} on port 8080` }),
      );
    }

    await platform.ps.scale(app, { web: 1 });
    expect(await webEndpoints(platform, app)).toHaveLength(1);
    expect(await strayContainers()).toEqual([]);
    expect(await serving()).toBe("v2");
  });

  it("restarts with a config change visible in the app, and runs one-off commands", async () => {
    const release = await platform.config.set(app, { GREETING: "hola" });
    expect(release?.description).toBe("Set GREETING");
    expect(await serving()).toBe("v2 hola");

    let output = "";
    const result = await platform.run(app, 'cat /srv/body.txt; echo " $GREETING"', {
      onOutput: (chunk) => {
        output += chunk;
      },
    });
    expect(result.exitCode).toBe(0);
    expect(output).toBe("v2 hola\n");
    expect((await platform.run(app, "exit 5")).exitCode).toBe(5);
  });

  it("rolls back to v1 with v1's image and config", async () => {
    const release = await platform.rollback(app, "v1");
    expect(release.description).toBe("Rollback to v1");
    expect(await serving()).toBe("v1");
    expect(await platform.config.all(app)).not.toHaveProperty("GREETING");
  });

  it("brings a crashed web process back through the restart policy", async () => {
    const [before] = await platform.ps.status(app);
    await run("docker", ["exec", before?.id ?? "", "sh", "-c", "kill -9 $(pidof httpd)"]);
    const after = await poll("web.1 restarted", async () => {
      const [instance] = await platform.ps.status(app);
      return instance?.running && instance.restarts >= 1 ? instance : undefined;
    });
    expect(after.id).toBe(before?.id);
    expect(await poll("web.1 answering", () => get(after.endpoint))).toEqual({ status: 200, body: "v1" });
  });

  describe("hostile input fails clearly and leaves nothing behind", () => {
    const imagesBefore = async () =>
      (await imagesOf(docker, [`berth.app=${app}`])).map((image) => image.Id).sort();

    it("a Dockerfile whose build fails", async () => {
      const images = await imagesBefore();
      const failure = await deploySample(platform, app, "broken", {
        Dockerfile: "FROM berth/busybox:latest\nRUN echo broken-step && exit 3\n",
      }).catch((error: unknown) => error);
      expect(isBerthError(failure, "BUILD_FAILED")).toBe(true);
      expect(await imagesBefore()).toEqual(images);
      expect(await strayContainers()).toEqual([]);
      expect(await serving()).toBe("v1");
    });

    it("a build context with a symlink pointing outside the source", async () => {
      const images = await imagesBefore();
      const failure = await deploySample(
        platform,
        app,
        "leak",
        { Dockerfile: 'FROM berth/busybox:latest\nCOPY leak /leak\nCMD ["cat", "/leak"]\n' },
        (dir) => symlink("/etc/passwd", join(dir, "leak")),
      ).catch((error: unknown) => error);
      expect(isBerthError(failure, "INVALID_SOURCE")).toBe(true);
      expect((failure as Error).message).toContain("leak");
      expect(await imagesBefore()).toEqual(images);
      expect(await strayContainers()).toEqual([]);
      expect(await serving()).toBe("v1");
    });

    it("an app whose process exits immediately", async () => {
      const images = await imagesBefore();
      const failure = await deploySample(platform, app, "gone", {
        Dockerfile: 'FROM berth/busybox:latest\nCMD ["sh", "-c", "echo bye"]\n',
      }).catch((error: unknown) => error);
      expect(isBerthError(failure, "CHECK_FAILED")).toBe(true);
      expect((failure as Error).message).toMatch(/web\.1 exited with code 0/);
      const failed = await latestRelease();
      expect(failed?.status).toBe("failed");
      expect(await imagesOf(docker, [`berth.app=${app}`, `berth.release=${failed?.id}`])).toEqual([]);
      expect(await imagesBefore()).toEqual(images);
      expect(await strayContainers()).toEqual([]);
      expect(await serving()).toBe("v1");
    });

    it("a memory limit of -1", async () => {
      await platform.apps.setPluginSettings(app, "scheduler-docker", { limits: { web: { memory: -1 } } });
      try {
        const images = await imagesBefore();
        const failure = await deploySample(platform, app, "limited").catch((error: unknown) => error);
        expect(isBerthError(failure, "INVALID_SETTING")).toBe(true);
        expect((failure as Error).message).toMatch(/memory limit -1 for web/);
        expect(await imagesBefore()).toEqual(images);
        expect(await strayContainers()).toEqual([]);
        expect(await serving()).toBe("v1");
      } finally {
        await platform.apps.setPluginSettings(app, "scheduler-docker", { limits: null });
      }
    });
  });

  it("runs the Procfile release command once per deploy and commits app.json predeploy into the image", async () => {
    const appJson = {
      scripts: { dokku: { predeploy: 'echo "predeployed with $GREETING" > /srv/predeploy.txt' } },
    };
    const procfile = 'web: sh /srv/start.sh\nrelease: echo "release phase of $DYNO with $GREETING"\n';
    await platform.config.set(app, { GREETING: "hi" }, { restart: false });
    const { collectOutput } = await import("@berth/core");
    const { output, text } = collectOutput();
    const source = await sampleSource("v-predeploy", {
      Procfile: procfile,
      "app.json": JSON.stringify(appJson),
    });
    try {
      await platform.deploy(app, source, { output });
    } finally {
      await rm(source.dir, { recursive: true, force: true });
    }
    expect(text().match(/release phase of run\.1 with hi/g)).toHaveLength(1);
    expect(await serving()).toBe("v-predeploy hi");
    const [web] = await platform.ps.status(app);
    const scheduler = platform.scheduler("docker");
    expect(await scheduler.exec(app, web!, ["cat", "/srv/predeploy.txt"])).toEqual({
      exitCode: 0,
      output: "predeployed with hi\n",
    });
    const current = await platform.releases.current(app);
    expect(current?.artifact.image).toBe(`berth/${app}:${current?.id}-predeploy`);

    const failure = await deploySample(platform, app, "never", {
      Procfile: "web: sh /srv/start.sh\nrelease: echo migrating; exit 9\n",
    }).catch((error: unknown) => error);
    expect(isBerthError(failure, "RELEASE_PHASE_FAILED")).toBe(true);
    expect(await serving()).toBe("v-predeploy hi");
    expect(await strayContainers()).toEqual([]);
    const failed = await latestRelease();
    expect(failed?.status).toBe("failed");
    expect(await imagesOf(docker, [`berth.app=${app}`, `berth.release=${failed?.id}`])).toEqual([]);
  });

  it("removes every container, image and network of a destroyed app", async () => {
    await platform.apps.destroy(app);
    expect(await containersOf(docker, [`berth.app=${app}`])).toEqual([]);
    expect(await imagesOf(docker, [`berth.app=${app}`])).toEqual([]);
    expect((await docker.listNetworks({ filters: { name: [`berth-${app}`] } })).length).toBe(0);
  });
});
