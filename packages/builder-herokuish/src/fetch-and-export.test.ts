import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import { createGzip } from "node:zlib";
import type { Platform } from "@berth/core";
import tar from "tar-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HerokuishBuilder } from "./builder.js";
import { fetchBuildpack, parseBuildpackReference } from "./buildpacks.js";
import { herokuishBuilder } from "./plugin.js";
import { exportSlug } from "./slug-export.js";
import { buildStackImage } from "./stack.js";
import {
  appSettings,
  buildpackDir,
  buildThrough,
  gitRepoOf,
  newPlatform,
  removeDir,
  removeImagesOf,
  sourceOf,
  temporary,
} from "./test-support/index.js";

const run = promisify(execFile);
const app = `hk-slug-${process.pid % 10000}`;
const cleanup: string[] = [];
let server: Server;
let base: string;
let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  await buildStackImage();
  dataDir = await temporary("data");
  cleanup.push(dataDir);
  platform = newPlatform(dataDir);
  platform.use(herokuishBuilder({ buildpacks: [buildpackDir("static")] }));
  // Serves the static buildpack as a .tgz, the way buildpack registries publish them.
  server = createServer((request, response) => {
    if (request.url === "/static.tgz") {
      response.writeHead(200, { "content-type": "application/gzip" });
      tar.pack(buildpackDir("static")).pipe(createGzip()).pipe(response);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
}, 600_000);

afterAll(async () => {
  server.close();
  await removeImagesOf(`berth/${app}`);
  for (const dir of cleanup) await removeDir(dir);
});

describe("fetching buildpacks", () => {
  it("fetches a .tgz buildpack over HTTP and builds with it", async () => {
    const source = await sourceOf("buildpack-static");
    cleanup.push(source.dir);
    const result = await buildThrough(platform, appSettings(app), source, 1, {
      config: { BUILDPACK_URL: `${base}/static.tgz` },
    });
    expect(result.error).toBeUndefined();
    expect(result.output).toContain(`Fetching buildpack ${base}/static.tgz`);
    expect(result.output).toContain("-----> Static app detected");
  });

  it("caches git buildpacks by URL and ref, checking out branches, tags and commits", async () => {
    const repo = await gitRepoOf(buildpackDir("procfile"), "v1");
    cleanup.push(repo);
    const { stdout } = await run("git", ["rev-parse", "HEAD"], { cwd: repo });
    const commit = stdout.trim();
    const cacheDir = await temporary("buildpacks");
    cleanup.push(cacheDir);
    const byTag = await fetchBuildpack(parseBuildpackReference(`file://${repo}#v1`), { cacheDir });
    const byCommit = await fetchBuildpack(parseBuildpackReference(`file://${repo}#${commit}`), { cacheDir });
    const byBranch = await fetchBuildpack(parseBuildpackReference(`${repo}#main`), { cacheDir });
    expect(new Set([byTag.dir, byCommit.dir, byBranch.dir]).size).toBe(3);
    const again = await fetchBuildpack(parseBuildpackReference(`file://${repo}#v1`), { cacheDir });
    expect(again.dir).toBe(byTag.dir);
    const head = await run("git", ["rev-parse", "HEAD"], { cwd: byCommit.dir });
    expect(head.stdout.trim()).toBe(commit);
    await expect(
      fetchBuildpack(parseBuildpackReference(`file://${repo}#no-such-ref`), { cacheDir }),
    ).rejects.toThrow(/ref no-such-ref is not a branch, tag or commit/);
  });
});

describe("slug export", () => {
  it("writes /app as a Heroku slug (./app/...) without .slugignore'd files", async () => {
    const source = await sourceOf("buildpack-static");
    cleanup.push(source.dir);
    // notes/ and *.draft never reach the build; public/site-name.txt, written by the buildpack, is named by
    // .slugignore too and stays out of the slug only.
    await run("sh", ["-c", "echo 'public/site-name.txt' >> .slugignore"], { cwd: source.dir });
    const result = await buildThrough(platform, appSettings(app), source, 2, {
      builder: "herokuish",
      config: { SITE_NAME: "slug" },
    });
    expect(result.error).toBeUndefined();
    const destination = join(dataDir, "slug.tgz");
    await exportSlug({
      image: `berth/${app}:v2`,
      destination,
      docker: (platform.builders.get("herokuish") as HerokuishBuilder).docker,
    });
    const { stdout } = await run("tar", ["-tzf", destination]);
    const entries = stdout.trim().split("\n");
    expect(entries).toContain("./app/public/index.html");
    expect(entries).toContain("./app/.profile.d/static.sh");
    expect(entries.some((entry) => entry.includes("notes"))).toBe(false);
    expect(entries.some((entry) => entry.endsWith(".draft"))).toBe(false);
    expect(entries).not.toContain("./app/public/site-name.txt");
  });
});
