import { rm } from "node:fs/promises";
import type { Platform } from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createDockerPlatform } from "./index.js";
import { containersOf, Docker, deploySample, get, imagesOf, webEndpoints } from "./test-support/helpers.js";

const docker = new Docker();
const before = `rn-${process.pid.toString(36)}`;
const after = `${before}-new`;
let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  dataDir = await temporaryDirectory();
  platform = createDockerPlatform({
    dataDir,
    checks: { uptime: 1, webTimeout: 20 },
    scheduler: { stopGracePeriodSeconds: 1 },
  });
  await platform.apps.create(before);
});

afterAll(async () => {
  for (const app of [before, after]) if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  await rm(dataDir, { recursive: true, force: true });
});

it("renames a running app, and destroying it later leaves no image of either name", async () => {
  await deploySample(platform, before, "before rename");
  await platform.apps.rename(before, after);
  const [endpoint] = await webEndpoints(platform, after);
  expect(await get(endpoint)).toEqual({ status: 200, body: "before rename" });
  expect(await containersOf(docker, [`berth.app=${before}`])).toEqual([]);
  // The image built before the rename still carries the old name's label.
  expect((await imagesOf(docker, [`berth.app=${before}`])).length).toBeGreaterThan(0);

  await deploySample(platform, after, "after rename");
  await platform.apps.destroy(after);
  expect(await containersOf(docker, [`berth.app=${after}`])).toEqual([]);
  expect(await imagesOf(docker, [`berth.app=${before}`])).toEqual([]);
  expect(await imagesOf(docker, [`berth.app=${after}`])).toEqual([]);
  // The shared base image is not Berth's to remove.
  expect(await docker.getImage("berth/busybox:latest").inspect()).toBeTruthy();
});
