import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isBerthError, Platform } from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herokuishBuilder } from "./plugin.js";
import { addBuildpack, clearBuildpacks, listBuildpacks, removeBuildpack, setBuildpacks } from "./settings.js";

let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  dataDir = await temporaryDirectory();
  platform = new Platform({ dataDir, defaults: { scheduler: "none" } });
  platform.use(herokuishBuilder());
  await platform.apps.create("listed");
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("an app's buildpack list", () => {
  it("is set, added to, removed from and cleared, in order", async () => {
    expect(await listBuildpacks(platform, "listed")).toEqual([]);
    await setBuildpacks(platform, "listed", ["https://example.com/a.git#v1", "/srv/buildpacks/b"]);
    await addBuildpack(platform, "listed", "https://example.com/first.tgz", 0);
    await addBuildpack(platform, "listed", "git@example.com:org/last.git");
    expect(await listBuildpacks(platform, "listed")).toEqual([
      "https://example.com/first.tgz",
      "https://example.com/a.git#v1",
      "/srv/buildpacks/b",
      "git@example.com:org/last.git",
    ]);
    await removeBuildpack(platform, "listed", "/srv/buildpacks/b");
    expect(await listBuildpacks(platform, "listed")).toHaveLength(3);
    expect((await platform.apps.get("listed")).plugins["builder-herokuish"]?.buildpacks).toHaveLength(3);
    await clearBuildpacks(platform, "listed");
    expect(await listBuildpacks(platform, "listed")).toEqual([]);
    expect((await platform.apps.get("listed")).plugins["builder-herokuish"]?.buildpacks).toBeUndefined();
  });

  it("rejects bad URLs, duplicates and unknown entries without changing the list", async () => {
    await setBuildpacks(platform, "listed", ["/srv/buildpacks/a"]);
    for (const attempt of [
      () => addBuildpack(platform, "listed", "--upload-pack=evil"),
      () => addBuildpack(platform, "listed", "/srv/buildpacks/a"),
      () => removeBuildpack(platform, "listed", "/srv/buildpacks/zzz"),
      () => setBuildpacks(platform, "listed", ["relative/path"]),
    ]) {
      const failure = await attempt().catch((error: unknown) => error);
      expect(isBerthError(failure, "INVALID_SETTING")).toBe(true);
    }
    expect(await listBuildpacks(platform, "listed")).toEqual(["/srv/buildpacks/a"]);
  });
});

describe("an app's build cache", () => {
  it("moves with a renamed app and goes with a destroyed one", async () => {
    await platform.apps.create("cached");
    const cache = join(dataDir, "cache", "cached");
    await mkdir(cache, { recursive: true });
    await writeFile(join(cache, "packages.tgz"), "cached work");
    await platform.apps.rename("cached", "renamed");
    const moved = join(dataDir, "cache", "renamed");
    expect((await stat(join(moved, "packages.tgz"))).isFile()).toBe(true);
    expect(await stat(cache).catch(() => undefined)).toBeUndefined();
    await platform.apps.destroy("renamed");
    expect(await stat(moved).catch(() => undefined)).toBeUndefined();
  });
});
