import { execFile } from "node:child_process";
import { chmod, cp, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildStackImage, setBuildpacks } from "@berth/builder-herokuish";
import { collectOutput, isBerthError, type Platform, type Source } from "@berth/core";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuildpackPlatform } from "./index.js";

const run = promisify(execFile);
const examples = fileURLToPath(new URL("../../", import.meta.url));
const buildpack = (name: string) => join(examples, "buildpacks", name);
const suffix = process.pid.toString(36);
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const apps = {
  static: `bp-static-${suffix}`,
  procfile: `bp-procfile-${suffix}`,
  vendor: `bp-vendor-${suffix}`,
  multi: `bp-multi-${suffix}`,
  pinned: `bp-pinned-${suffix}`,
  broken: `bp-broken-${suffix}`,
};
const cleanup: string[] = [];
let dataDir: string;
let platform: Platform;

async function sourceOf(app: string, extra: Record<string, string> = {}): Promise<Source> {
  const dir = await mkdtemp(join(tmpdir(), "berth-test-bp-source-"));
  cleanup.push(dir);
  await cp(join(examples, "apps", app), dir, { recursive: true });
  for (const [name, content] of Object.entries(extra)) await writeFile(join(dir, name), content);
  return { kind: "dir", dir };
}

async function deploy(app: string, source: Source) {
  const { output, text } = collectOutput();
  try {
    const release = await platform.deploy(app, source, { output });
    return { release, output: text(), error: undefined };
  } catch (error) {
    return { release: undefined, output: text(), error };
  }
}

async function web(app: string, path = "/"): Promise<string> {
  const instance = (await platform.ps.status(app)).find(
    (candidate) => candidate.processType === "web" && candidate.running,
  );
  expect(instance?.endpoint?.host).toBe("127.0.0.1");
  const response = await fetch(`http://127.0.0.1:${instance?.endpoint?.port}${path}`);
  return response.text();
}

async function gitRepoOf(dir: string, tag: string): Promise<string> {
  const repo = await mkdtemp(join(tmpdir(), "berth-test-bp-repo-"));
  cleanup.push(repo);
  await cp(dir, repo, { recursive: true });
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=Berth Test", "-c", "user.email=test@berth.invalid", ...args], { cwd: repo });
  await git("init", "-q", "--initial-branch=main");
  await git("add", "-A");
  await git("commit", "-q", "-m", "buildpack");
  await git("tag", tag);
  return repo;
}

beforeAll(async () => {
  await buildStackImage();
  dataDir = await mkdtemp(join(tmpdir(), "berth-test-bp-data-"));
  platform = createBuildpackPlatform({
    dataDir,
    checks: { uptime: 1, webTimeout: 20 },
    scheduler: { stopGracePeriodSeconds: 2 },
    builder: { buildpacks: [buildpack("static"), buildpack("vendor"), buildpack("procfile")] },
  });
  for (const app of Object.values(apps)) await platform.apps.create(app);
}, 600_000);

afterAll(async () => {
  for (const app of Object.values(apps)) {
    if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  }
  await rm(dataDir, { recursive: true, force: true });
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

describe("buildpack apps on the Docker scheduler", () => {
  it("detects a static app, deploys it and serves it through /start web", async () => {
    const { release, output, error } = await deploy(apps.static, await sourceOf("buildpack-static"));
    expect(error).toBeUndefined();
    expect(output).toContain("-----> Static app detected");
    expect(release).toMatchObject({
      id: "v1",
      status: "succeeded",
      processTypes: { web: expect.stringContaining("httpd") },
    });
    // Buildpack config_vars reach the release's environment under the app's own config.
    expect(release?.artifact.configDefaults).toEqual({ STATIC_ROOT: "/app/public" });
    expect(await web(apps.static)).toContain("Hello from a static buildpack app");
    const ran = collectOutput();
    const result = await platform.run(apps.static, "echo root=$STATIC_ROOT served-by=$STATIC_SERVED_BY", {
      onOutput: (chunk) => ran.output.stream(chunk),
    });
    ran.output.flush();
    expect(result.exitCode).toBe(0);
    expect(ran.text()).toContain("root=/app/public served-by=busybox-httpd");
  });

  it("runs a Procfile app's web and worker, with shell syntax in the web command", async () => {
    const { release, error } = await deploy(apps.procfile, await sourceOf("buildpack-procfile"));
    expect(error).toBeUndefined();
    expect(Object.keys(release?.processTypes ?? {}).sort()).toEqual(["web", "worker"]);
    await platform.ps.scale(apps.procfile, { worker: 1 });
    const status = await platform.ps.status(apps.procfile);
    expect(
      status
        .filter((instance) => instance.running)
        .map((instance) => instance.processType)
        .sort(),
    ).toEqual(["web", "worker"]);
    expect((await web(apps.procfile)).trim()).toBe("greeting=piped dir=site user=berth vendor=none");
    const lines: string[] = [];
    const deadline = Date.now() + 20_000;
    while (!lines.some((line) => line.includes("worker alive")) && Date.now() < deadline) {
      lines.length = 0;
      await platform.logs(apps.procfile, { processType: "worker", tail: 10 }, (line) =>
        lines.push(line.line),
      );
      if (!lines.some((line) => line.includes("worker alive")))
        await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(lines.some((line) => line.includes("worker alive"))).toBe(true);
  });

  it("builds a multi-buildpack app from .buildpacks and a BUILDPACK_URL pinned to a tag", async () => {
    const vendorRepo = await gitRepoOf(buildpack("vendor"), "v1");
    const multi = await deploy(
      apps.multi,
      await sourceOf("buildpack-multi", {
        ".buildpacks": `file://${vendorRepo}#v1\n${buildpack("static")}\n`,
      }),
    );
    expect(multi.error).toBeUndefined();
    expect((await web(apps.multi, "/vendored.txt")).trim()).toBe("tiny");

    const staticRepo = await gitRepoOf(buildpack("static"), "stable");
    await writeFile(
      join(staticRepo, "bin", "compile"),
      "#!/usr/bin/env bash\necho 'newer, broken'\nexit 1\n",
    );
    await run("git", ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qam", "break"], {
      cwd: staticRepo,
    });
    await platform.config.set(
      apps.pinned,
      { BUILDPACK_URL: `file://${staticRepo}#stable` },
      { restart: false },
    );
    const pinned = await deploy(apps.pinned, await sourceOf("buildpack-static"));
    expect(pinned.error).toBeUndefined();
    expect(pinned.output).toContain(`-----> Using buildpack: file://${staticRepo}#stable`);
    expect(await web(apps.pinned)).toContain("Hello from a static buildpack app");
  });

  it("rebuilds from the cache, and a failing compile keeps the previous release serving and the cache as it was", async () => {
    const source = await sourceOf("buildpack-vendor");
    const cold = await deploy(apps.vendor, source);
    expect(cold.error).toBeUndefined();
    expect(cold.output).toContain("0 from the cache, 3 built");
    const warm = await deploy(apps.vendor, source);
    expect(warm.error).toBeUndefined();
    expect(warm.output).toContain("3 from the cache, 0 built");
    expect((await web(apps.vendor, "/.cache-report")).trim()).toBe("hits=3 misses=0");
    expect(Number(warm.release?.artifact.metadata?.buildSeconds)).toBeLessThan(
      Number(cold.release?.artifact.metadata?.buildSeconds),
    );

    const cacheDir = join(dataDir, "cache", apps.vendor, "vendor");
    const cachedBefore = (await readdir(cacheDir)).sort();
    await writeFile(join(source.dir, "deps.txt"), "left-pad 2\nanother 1\nnot valid!\n");
    const failed = await deploy(apps.vendor, source);
    expect(isBerthError(failed.error, "BUILD_FAILED")).toBe(true);
    expect(failed.output).toContain("Push rejected, failed to compile Vendor app.");
    expect((await readdir(cacheDir)).sort()).toEqual(cachedBefore);
    expect((await platform.apps.state(apps.vendor)).currentRelease).toBe("v2");
    expect((await web(apps.vendor, "/.cache-report")).trim()).toBe("hits=3 misses=0");
  });

  it("uses the app's buildpack list, and fails clearly when none of them fits", async () => {
    await setBuildpacks(platform, apps.pinned, [buildpack("vendor")]);
    const failed = await deploy(apps.pinned, await sourceOf("buildpack-static"));
    expect(isBerthError(failed.error, "BUILD_FAILED")).toBe(true);
    expect(failed.output).toContain(` !     App not compatible with buildpack: ${buildpack("vendor")}`);
    expect(await web(apps.pinned)).toContain("Hello from a static buildpack app");
    const state = await platform.apps.state(apps.pinned);
    expect(state.currentRelease).toBe("v1");
  });

  it("runs /start for unknown types with a clear failure, and the web pipeline's output reaches the logs", async () => {
    const lines: string[] = [];
    await platform.logs(apps.procfile, { processType: "web", tail: 20 }, (line) => lines.push(line.line));
    expect(lines.some((line) => line.includes("serving on"))).toBe(true);
    const ran = collectOutput();
    const result = await platform.run(apps.procfile, "/start clock", {
      onOutput: (chunk) => ran.output.stream(chunk),
    });
    ran.output.flush();
    expect(result.exitCode).not.toBe(0);
    expect(ran.text()).toContain('berth: unknown process type "clock"; this release defines: web worker');
  });

  it("fails clearly, leaving nothing behind, when no buildpack matches, a URL is unreachable, detect is not executable or compile writes outside BUILD_DIR", async () => {
    const app = apps.broken;
    const first = await deploy(app, await sourceOf("buildpack-static"));
    expect(first.error).toBeUndefined();
    const containersBefore = await appContainers(app);
    const imagesBefore = await appImages(app);

    await platform.apps.configure(app, { builder: "herokuish" });
    const nothing = await deploy(
      app,
      await sourceOf("buildpack-static", {}).then(async (source) => {
        await rm(join(source.dir, "index.html"));
        await writeFile(join(source.dir, "README.md"), "nothing any buildpack knows\n");
        return source;
      }),
    );
    expect(isBerthError(nothing.error, "BUILD_FAILED")).toBe(true);
    expect(nothing.output).toContain("-----> Unable to select a buildpack");
    expect(nothing.output).toContain(
      `Tried, in order: ${buildpack("static")}, ${buildpack("vendor")}, ${buildpack("procfile")}`,
    );

    await platform.config.set(
      app,
      { BUILDPACK_URL: "https://127.0.0.1:9/nobody/buildpack.git" },
      { restart: false },
    );
    const unreachable = await deploy(app, await sourceOf("buildpack-static"));
    expect(isBerthError(unreachable.error, "BUILD_FAILED")).toBe(true);
    expect((unreachable.error as Error).message).toContain(
      "Could not fetch buildpack https://127.0.0.1:9/nobody/buildpack.git: ",
    );

    const noExec = await mkdtemp(join(tmpdir(), "berth-test-bp-noexec-"));
    cleanup.push(noExec);
    await cp(buildpack("static"), noExec, { recursive: true });
    await chmod(join(noExec, "bin", "detect"), 0o644);
    await platform.config.set(app, { BUILDPACK_URL: noExec }, { restart: false });
    const notExecutable = await deploy(app, await sourceOf("buildpack-static"));
    expect(isBerthError(notExecutable.error, "BUILD_FAILED")).toBe(true);
    expect((notExecutable.error as Error).message).toContain("bin/detect is not executable");

    const outside = await mkdtemp(join(tmpdir(), "berth-test-bp-outside-"));
    cleanup.push(outside);
    await cp(buildpack("static"), outside, { recursive: true });
    await writeFile(
      join(outside, "bin", "compile"),
      "#!/usr/bin/env bash\nset -e\necho 'rooting around' > /etc/motd\n",
      { mode: 0o755 },
    );
    await platform.config.set(app, { BUILDPACK_URL: outside }, { restart: false });
    const escaped = await deploy(app, await sourceOf("buildpack-static"));
    expect(isBerthError(escaped.error, "BUILD_FAILED")).toBe(true);
    expect(escaped.output).toContain("/etc/motd: Permission denied");
    expect(escaped.output).toContain("Buildpacks run as an unprivileged user");

    // Every failure: v1 still serves, no release was added, no container or image of the attempts remains.
    expect(await web(app)).toContain("Hello from a static buildpack app");
    expect((await platform.releases.list(app)).map((release) => release.id)).toEqual(["v1"]);
    expect(await appContainers(app)).toEqual(containersBefore);
    expect(await appImages(app)).toEqual(imagesBefore);
    expect(
      (await docker.listContainers({ all: true })).some((container) =>
        container.Names.some((name) => name.startsWith(`/berth-build-${app}-`)),
      ),
    ).toBe(false);
  });
});

async function appContainers(app: string): Promise<string[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`berth.app=${app}`] } });
  return containers.map((container) => container.Id).sort();
}

async function appImages(app: string): Promise<string[]> {
  const images = await docker.listImages({ filters: { reference: [`berth/${app}:*`] } });
  return images.flatMap((image) => image.RepoTags ?? []).sort();
}
