import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Platform } from "@berth/core";
import { FakeSchedulerPlugin, temporaryDirectory } from "@berth/core/testing";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerfileBuilder } from "./index.js";

const docker = new Docker();
const app = `bdf-${process.pid % 100000}-deploy`;
let dataDir: string;
let platform: Platform;
const directories: string[] = [];

async function deploy(files: Record<string, string>, rev: string) {
  const dir = await temporaryDirectory("berth-bdf-deploy-");
  directories.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return platform.deploy(app, { kind: "git", dir, rev });
}

async function tagged(version: number): Promise<boolean> {
  return docker
    .getImage(`berth/${app}:v${version}`)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

beforeAll(async () => {
  dataDir = await temporaryDirectory("berth-bdf-platform-");
  // The fake scheduler runs nothing real: this file is about what the builder hands the pipeline.
  platform = new Platform({ dataDir, defaults: { scheduler: "fake" }, keepReleases: 2 });
  platform.use(dockerfileBuilder({ docker })).use(new FakeSchedulerPlugin());
  await platform.apps.create(app);
  await platform.apps.configure(app, { checks: { disabled: ["_all_"], skipped: [] } });
});

afterAll(async () => {
  if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  for (const dir of [...directories, dataDir]) await rm(dir, { recursive: true, force: true });
});

describe("builder-dockerfile in a Platform deploy", () => {
  const dockerfile = 'FROM berth/busybox:latest\nEXPOSE 8080\nCMD ["httpd", "-f", "-p", "8080"]\n';

  it("gives the release its web process from CMD and its ports from EXPOSE; a Procfile wins", async () => {
    const first = await deploy({ Dockerfile: dockerfile }, "1111111111111111111111111111111111111111");
    expect(first.processTypes.web).toBe("httpd -f -p 8080");
    expect(first.artifact).toMatchObject({
      builder: "dockerfile",
      image: `berth/${app}:v1`,
      ports: [8080],
      imageDefaultProcess: "web",
      launcher: "shell",
    });
    const image = await docker.getImage(`berth/${app}:v1`).inspect();
    expect(image.Config.Labels?.["berth.rev"]).toBe("1111111111111111111111111111111111111111");

    const second = await deploy(
      { Dockerfile: dockerfile, Procfile: "web: httpd -f -p $PORT\nworker: sleep 3600\n" },
      "2222222222222222222222222222222222222222",
    );
    expect(second.processTypes).toEqual({ web: "httpd -f -p $PORT", worker: "sleep 3600" });
  });

  it("removes the images of releases the pipeline prunes, and all of them on destroy", async () => {
    await deploy({ Dockerfile: dockerfile }, "3333333333333333333333333333333333333333");
    // keepReleases 2: v3 and v2 stay, v1's image goes.
    expect(await tagged(1)).toBe(false);
    expect(await tagged(2)).toBe(true);
    expect(await tagged(3)).toBe(true);
    await platform.apps.destroy(app);
    expect(await docker.listImages({ filters: { label: [`berth.app=${app}`] } })).toEqual([]);
  });
});
