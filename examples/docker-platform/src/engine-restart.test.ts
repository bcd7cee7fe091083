import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Platform } from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDockerPlatform } from "./index.js";
import { deploySample, poll, webEndpoints } from "./test-support/helpers.js";
import { PrivateEngine } from "./test-support/private-engine.js";

const app = `dr-${process.pid.toString(36)}`;
let dataDir: string;
let engine: PrivateEngine;
let platform: Platform;

beforeAll(async () => {
  dataDir = await temporaryDirectory();
  engine = new PrivateEngine(join(dataDir, "engine"));
  await engine.start();
  await engine.loadImage("berth/busybox:latest");
  platform = createDockerPlatform({
    dataDir: join(dataDir, "platform"),
    socketPath: engine.socketPath,
    checks: { uptime: 1 },
    // The engine's ports live in its own network namespace, out of reach of the platform's HTTP checks and of
    // the scheduler's wait for answers: the test asks inside the namespace instead.
    scheduler: { stopGracePeriodSeconds: 2, readyTimeoutMs: 0 },
  });
  await platform.apps.create(app);
  await platform.apps.configure(app, { checks: { disabled: ["web"], skipped: [] } });
});

afterAll(async () => {
  await engine?.destroy();
  await rm(dataDir, { recursive: true, force: true });
});

describe("a Docker engine restart", () => {
  it("stops the app with the engine; after reconcile it answers on the endpoints the engine reports now", async () => {
    await deploySample(platform, app, "survivor", {
      Procfile: "web: sh /srv/start.sh\nworker: exec sleep 100000\n",
      "app.json": JSON.stringify({ formation: { worker: { quantity: 1 } } }),
    });
    const [before] = await webEndpoints(platform, app);
    expect(await poll("web answering", () => engine.request(before?.port ?? 0))).toBe("survivor");
    const deployment = (await platform.apps.state(app)).deployment?.id;

    await engine.stop();
    await engine.start();
    await platform.reconcile();

    const status = await platform.ps.status(app);
    expect(status.map((instance) => [instance.processType, instance.running, instance.deployment])).toEqual([
      ["web", true, deployment],
      ["worker", true, deployment],
    ]);
    const [after] = await webEndpoints(platform, app);
    expect(await poll("web answering after the restart", () => engine.request(after?.port ?? 0))).toBe(
      "survivor",
    );
    await platform.apps.destroy(app);
    expect(await engine.docker.listContainers({ all: true })).toEqual([]);
  });
});
