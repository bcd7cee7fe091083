import { createHash } from "node:crypto";
import { chmod, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { collectOutput, isBerthError, type Platform } from "@berth/core";
import { FakeBuilderPlugin } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HerokuishBuilder } from "./builder.js";
import { herokuishBuilder } from "./plugin.js";
import { buildStackImage } from "./stack.js";
import {
  appSettings,
  buildpackCopy,
  buildpackDir,
  buildThrough,
  containersNamed,
  gitCommitAll,
  gitRepoOf,
  imageExists,
  newPlatform,
  removeDir,
  removeImagesOf,
  runOnce,
  serve,
  sourceFromFiles,
  sourceOf,
  temporary,
  writeScript,
} from "./test-support/index.js";

const suffix = process.pid % 10000;
const installed = [buildpackDir("static"), buildpackDir("vendor"), buildpackDir("procfile")];
const cleanup: string[] = [];
const apps: string[] = [];

function appName(name: string): string {
  const app = `hk-${name}-${suffix}`;
  apps.push(app);
  return app;
}

let dataDir: string;
let platform: Platform;

beforeAll(async () => {
  // Cached rootfs: seconds when the stack exists, a debootstrap (about a minute) on a fresh machine.
  await buildStackImage();
  dataDir = await temporary("data");
  platform = newPlatform(dataDir);
  platform.use(herokuishBuilder({ buildpacks: installed }));
}, 600_000);

afterAll(async () => {
  for (const app of apps) await removeImagesOf(`berth/${app}`);
  for (const dir of [dataDir, ...cleanup]) await removeDir(dir);
});

async function source(app: string, extra: Record<string, string> = {}) {
  const built = await sourceOf(app, extra);
  cleanup.push(built.dir);
  return built;
}

async function files(entries: Record<string, string>) {
  const built = await sourceFromFiles(entries);
  cleanup.push(built.dir);
  return built;
}

describe("herokuish builder on the Docker engine", () => {
  it("detects a static app, builds it and the image serves it with /start web", async () => {
    const app = appName("static");
    const { artifact, output, error } = await buildThrough(
      platform,
      appSettings(app),
      await source("buildpack-static"),
      1,
      {
        config: { SITE_NAME: "Static Example" },
      },
    );
    expect(error).toBeUndefined();
    expect(output).toContain("-----> Using buildpack: ");
    expect(output).toContain("-----> Static app detected");
    expect(output).toContain("       Site name: Static Example");
    expect(output).toMatch(
      /-----> Discovering process types\n {7}Procfile declares types {5}-> \(none\)\n {7}Default types for buildpack -> web/,
    );
    expect(artifact).toMatchObject({
      builder: "herokuish",
      image: `berth/${app}:v1`,
      launcher: "start",
      defaultProcessTypes: { web: 'exec httpd -f -p "$PORT" -h "$STATIC_ROOT"' },
      configDefaults: { STATIC_ROOT: "/app/public" },
      ports: [5000],
    });
    const running = await serve(`berth/${app}:v1`, `berth-test-herokuish-${app}`);
    try {
      expect(await (await fetch(running.url)).text()).toContain("Hello from a static buildpack app");
      expect(await (await fetch(`${running.url}site-name.txt`)).text()).toBe("Static Example");
      const inspect = await running.container.inspect();
      expect(inspect.Config.Labels).toMatchObject({ "berth.app": app, "berth.release": "v1" });
    } finally {
      await running.stop();
    }
    // .slugignore'd files never reach the buildpack or the image; the build's temporary files are gone too.
    const listing = await runOnce(`berth/${app}:v1`, [
      "/exec",
      "sh",
      "-c",
      "ls -A /app /app/public /tmp /cache; id -un",
    ]);
    expect(listing.output).not.toContain("notes");
    expect(listing.output).not.toContain("page.draft");
    expect(listing.output).toContain("style.css");
    expect(listing.output).not.toContain("buildpacks");
    expect(listing.output.trim().split("\n").at(-1)).toBe("berth");
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
  });

  it("runs Procfile commands with bash -c as the app user: cd, VAR=x and pipes; an unknown type fails clearly", async () => {
    const app = appName("procfile");
    const { artifact, output, error } = await buildThrough(
      platform,
      appSettings(app),
      await source("buildpack-procfile"),
      1,
    );
    expect(error).toBeUndefined();
    expect(output).toContain("Procfile declares types     -> web, worker");
    expect(artifact?.procfile).toContain("web: cd site && GREETING=piped ./serve.sh | tee /tmp/web.log");
    const running = await serve(`berth/${app}:v1`, `berth-test-herokuish-${app}`, ["/start", "web"]);
    try {
      expect((await (await fetch(running.url)).text()).trim()).toBe(
        "greeting=piped dir=site user=berth vendor=none",
      );
      const log = await runOnce(`berth/${app}:v1`, ["/exec", "true"]);
      expect(log.exitCode).toBe(0);
      const tee = await running.container.exec({ Cmd: ["cat", "/tmp/web.log"], AttachStdout: true });
      const stream = await tee.start({ hijack: true, stdin: false });
      let text = "";
      stream.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
      });
      await new Promise((resolve) => stream.on("end", resolve));
      expect(text).toContain("serving on 5000");
      // The stop signal reaches the whole pipeline: no 10 s wait for a SIGKILL.
      const started = Date.now();
      await running.container.stop({ t: 10 });
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await running.stop();
    }
    const unknown = await runOnce(`berth/${app}:v1`, ["/start", "clock"]);
    expect(unknown.exitCode).not.toBe(0);
    expect(unknown.output).toContain('berth: unknown process type "clock"; this release defines: web worker');
    const hostile = await runOnce(`berth/${app}:v1`, ["/start", "../../etc/passwd"]);
    expect(hostile.exitCode).not.toBe(0);
    expect(hostile.output).toContain("invalid process type");
  });

  it("builds a multi-buildpack app from .buildpacks in order, sourcing each buildpack's export", async () => {
    const app = appName("multi");
    const vendorRepo = await gitRepoOf(buildpackDir("vendor"), "v1");
    cleanup.push(vendorRepo);
    const buildpacks = `# vendor first, then the site\nfile://${vendorRepo}#v1\n\n${buildpackDir("static")}\n`;
    const { artifact, output, error } = await buildThrough(
      platform,
      appSettings(app),
      await source("buildpack-multi", { ".buildpacks": buildpacks }),
      1,
    );
    expect(error).toBeUndefined();
    expect(output).toContain("-----> Using buildpacks (from .buildpacks):");
    expect(output).toContain(`       1. file://${vendorRepo}#v1`);
    expect(output).toMatch(
      /Vendor app detected[\s\S]*Building tiny[\s\S]*Static app detected[\s\S]*Listing vendored packages/,
    );
    // Defaults of every buildpack, later ones winning per type.
    expect(artifact?.defaultProcessTypes).toMatchObject({
      web: expect.stringContaining("httpd"),
      worker: expect.any(String),
    });
    const running = await serve(`berth/${app}:v1`, `berth-test-herokuish-${app}`);
    try {
      expect((await (await fetch(`${running.url}vendored.txt`)).text()).trim()).toBe("tiny");
    } finally {
      await running.stop();
    }
  });

  it("pins BUILDPACK_URL=file://…#tag to the tag, and follows a branch", async () => {
    const app = appName("pinned");
    const pack = await buildpackCopy("procfile");
    cleanup.push(pack);
    await writeScript(
      join(pack, "bin", "compile"),
      '#!/usr/bin/env bash\necho "-----> pinned buildpack, first version"\n',
    );
    const repo = await gitRepoOf(pack, "v1");
    cleanup.push(repo);
    await writeScript(
      join(repo, "bin", "compile"),
      '#!/usr/bin/env bash\necho "-----> pinned buildpack, second version"\n',
    );
    await gitCommitAll(repo, "second version");
    const appSource = await source("buildpack-procfile");
    const pinned = await buildThrough(platform, appSettings(app), appSource, 1, {
      config: { BUILDPACK_URL: `file://${repo}#v1` },
    });
    expect(pinned.error).toBeUndefined();
    expect(pinned.output).toContain("-----> pinned buildpack, first version");
    expect(pinned.output).not.toContain("second version");
    const branch = await buildThrough(platform, appSettings(app), appSource, 2, {
      config: { BUILDPACK_URL: `file://${repo}#main` },
    });
    expect(branch.error).toBeUndefined();
    expect(branch.output).toContain("-----> pinned buildpack, second version");
  });

  it("uses the app's buildpack list over .buildpacks and BUILDPACK_URL", async () => {
    const app = appName("listed");
    const { output, error, artifact } = await buildThrough(
      platform,
      appSettings(app, { "builder-herokuish": { buildpacks: [buildpackDir("procfile")] } }),
      await source("buildpack-static", {
        Procfile: "web: exec httpd -f -p $PORT -h /app\n",
        ".buildpacks": "/nonexistent\n",
      }),
      1,
      { config: { BUILDPACK_URL: "/nonexistent-either" } },
    );
    expect(error).toBeUndefined();
    expect(output).toContain(`-----> Using buildpack: ${buildpackDir("procfile")}`);
    expect(artifact?.metadata?.selectedBy).toBe("app");
  });

  it("rebuilds an unchanged app faster from its cache, and a failing compile leaves the cache as it was", async () => {
    const app = appName("cache");
    const appSource = await source("buildpack-vendor");
    const first = Date.now();
    const cold = await buildThrough(platform, appSettings(app), appSource, 1);
    const coldMs = Date.now() - first;
    expect(cold.error).toBeUndefined();
    expect(cold.output).toContain("0 from the cache, 3 built");
    // deps.txt and a Procfile: two installed buildpacks detect it, the first in the installed order builds.
    expect(cold.output).toContain("-----> Detected buildpacks: Vendor (vendor), Procfile (procfile)");
    expect(cold.output).toContain(`       Using the first in the installed order: ${buildpackDir("vendor")}`);
    const second = Date.now();
    const warm = await buildThrough(platform, appSettings(app), appSource, 2);
    const warmMs = Date.now() - second;
    expect(warm.error).toBeUndefined();
    expect(warm.output).toContain("3 from the cache, 0 built");
    expect(warmMs).toBeLessThan(coldMs);
    const report = await runOnce(`berth/${app}:v2`, ["/exec", "cat", "/app/vendor/.cache-report"]);
    expect(report.output.trim()).toBe("hits=3 misses=0");

    const cacheDir = join(dataDir, "cache", app);
    const before = await fingerprint(cacheDir);
    // A new dependency is built into the cache, then the build fails: none of it may be kept.
    await writeFile(join(appSource.dir, "deps.txt"), "left-pad 2\nbrand-new 1\nbroken name!\n");
    const failed = await buildThrough(platform, appSettings(app), appSource, 3);
    expect(isBerthError(failed.error, "BUILD_FAILED")).toBe(true);
    expect(failed.output).toContain("Building brand-new");
    expect(failed.output).toContain(" !     Push rejected, failed to compile Vendor app.");
    expect(await fingerprint(cacheDir)).toEqual(before);
    expect(await imageExists(`berth/${app}:v3`)).toBe(false);
    expect(await imageExists(`berth/${app}:v2`)).toBe(true);
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
    expect((await readdir(join(dataDir, "cache"))).filter((name) => name.startsWith(`${app}.`))).toEqual([]);
  });

  it("says when no buildpack matches, listing what it tried; unselected, it leaves the source to others", async () => {
    const app = appName("nomatch");
    const unclaimed = await buildThrough(
      platform,
      appSettings(app),
      await files({ "README.md": "nothing to build" }),
      1,
    );
    expect(unclaimed).toMatchObject({ artifact: undefined, error: undefined, output: "" });
    const selected = await buildThrough(
      platform,
      appSettings(app),
      await files({ "README.md": "nothing to build" }),
      1,
      {
        builder: "herokuish",
      },
    );
    expect(isBerthError(selected.error, "BUILD_FAILED")).toBe(true);
    expect((selected.error as Error).message).toContain("Unable to select a buildpack");
    expect(selected.output).toContain("-----> Unable to select a buildpack");
    expect(selected.output).toContain(`       Tried, in order: ${installed.join(", ")}`);
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
  });

  it("fails clearly on an unreachable buildpack URL, leaving nothing behind", async () => {
    const app = appName("unreachable");
    for (const url of [
      "https://127.0.0.1:9/nobody/buildpack.git#v1",
      "http://127.0.0.1:9/buildpack.tgz",
      "file:///nonexistent/repo",
    ]) {
      const result = await buildThrough(platform, appSettings(app), await source("buildpack-static"), 1, {
        config: { BUILDPACK_URL: url },
      });
      expect(isBerthError(result.error, "BUILD_FAILED"), url).toBe(true);
      const message = (result.error as Error).message;
      expect(message).toContain(`Could not fetch buildpack ${url}`);
      expect(message.length).toBeGreaterThan(`Could not fetch buildpack ${url}: `.length);
      expect(result.output).toContain(" !     Could not fetch buildpack");
    }
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
    expect(await imageExists(`berth/${app}:v1`)).toBe(false);
    expect(
      (await readdir(join(dataDir, "buildpacks")).catch(() => [])).filter((name) =>
        name.includes(".partial-"),
      ),
    ).toEqual([]);
  });

  it("refuses a buildpack whose bin/detect is not executable, before any container exists", async () => {
    const app = appName("noexec");
    const pack = await buildpackCopy("static");
    cleanup.push(pack);
    await chmod(join(pack, "bin", "detect"), 0o644);
    const result = await buildThrough(platform, appSettings(app), await source("buildpack-static"), 1, {
      config: { BUILDPACK_URL: pack },
    });
    expect(isBerthError(result.error, "BUILD_FAILED")).toBe(true);
    expect((result.error as Error).message).toContain(
      `Buildpack ${pack}: bin/detect is not executable (mode 644)`,
    );
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
  });

  it("stops a compile that writes outside BUILD_DIR, with a clear error and nothing left behind", async () => {
    const app = appName("outside");
    const pack = await buildpackCopy("static");
    cleanup.push(pack);
    await writeScript(
      join(pack, "bin", "compile"),
      '#!/usr/bin/env bash\nset -e\necho "-----> Installing into the system"\necho scratch > /tmp/scratch\necho evil > /usr/local/bin/evil\n',
    );
    const result = await buildThrough(platform, appSettings(app), await source("buildpack-static"), 1, {
      config: { BUILDPACK_URL: pack },
    });
    expect(isBerthError(result.error, "BUILD_FAILED")).toBe(true);
    expect(result.output).toContain("/usr/local/bin/evil: Permission denied");
    expect(result.output).toContain(
      " !     Buildpacks run as an unprivileged user and may write only to BUILD_DIR (/app)",
    );
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
    expect(await imageExists(`berth/${app}:v1`)).toBe(false);
    const stack = await runOnce("berth/stack:bookworm", ["ls", "/usr/local/bin"]);
    expect(stack.output).not.toContain("evil");
  });

  it("cancels a running build when the signal aborts, leaving nothing behind", async () => {
    const app = appName("cancel");
    const pack = await buildpackCopy("procfile");
    cleanup.push(pack);
    await writeScript(
      join(pack, "bin", "compile"),
      '#!/usr/bin/env bash\necho "-----> Taking forever"\nexec sleep 300\n',
    );
    const builder = new HerokuishBuilder({ dataDir });
    const controller = new AbortController();
    const { output, text } = collectOutput();
    const started = Date.now();
    const building = builder
      .build({
        platform,
        app: appSettings(app),
        output,
        signal: controller.signal,
        source: await source("buildpack-procfile"),
        version: 1,
        builder: "herokuish",
        config: { BUILDPACK_URL: pack },
      })
      .catch((error: unknown) => error);
    const deadline = Date.now() + 60_000;
    while (!text().includes("Taking forever") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    controller.abort();
    const failure = await building;
    expect(isBerthError(failure, "BUILD_FAILED")).toBe(true);
    expect((failure as Error).message).toContain("cancelled");
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(await containersNamed(`berth-build-${app}-`)).toEqual([]);
    expect(await imageExists(`berth/${app}:v1`)).toBe(false);
  });

  it("answers Builder.detect(): .buildpacks or a detecting installed buildpack claims, anything else not", async () => {
    const builder = new HerokuishBuilder({ dataDir, buildpacks: installed });
    expect(await builder.detect(await source("buildpack-static"))).toBe(true);
    expect(await builder.detect(await files({ ".buildpacks": "/srv/anything\n" }))).toBe(true);
    expect(await builder.detect(await files({ "README.md": "plain" }))).toBe(false);
    expect(await new HerokuishBuilder({ dataDir }).detect(await source("buildpack-static"))).toBe(false);
    expect(await containersNamed("berth-build-detect-")).toEqual([]);
  });

  it("ranks after a builder tapped at the default stage (the Dockerfile builder's place)", async () => {
    const app = appName("ranked");
    const ranked = newPlatform(dataDir);
    // Applied first, yet asked second: order comes from `stage`, not from registration.
    ranked.use(herokuishBuilder({ buildpacks: installed })).use(new FakeBuilderPlugin());
    const result = await buildThrough(ranked, appSettings(app), await source("buildpack-static"), 1);
    expect(result.artifact?.builder).toBe("fake");
    const selected = await buildThrough(ranked, appSettings(app), await source("buildpack-static"), 1, {
      builder: "herokuish",
    });
    expect(selected.artifact?.builder).toBe("herokuish");
  });
});

async function fingerprint(dir: string): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  const walk = async (current: string) => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await walk(path);
      else
        entries[path.slice(dir.length)] = createHash("sha256")
          .update(await readFile(path))
          .digest("hex");
    }
  };
  await walk(dir);
  return entries;
}
