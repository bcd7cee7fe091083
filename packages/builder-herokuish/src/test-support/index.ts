import { execFile } from "node:child_process";
import { chmod, cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  type AppSettings,
  type Artifact,
  type BuildContext,
  collectOutput,
  defaultAppSettings,
  Platform,
  type Source,
} from "@berth/core";
import Docker from "dockerode";

/** Shared by this package's engine tests: example buildpacks and apps, git repos of them, running images. */

const run = promisify(execFile);
export const docker = new Docker({ socketPath: "/var/run/docker.sock" });
export const examplesDir = fileURLToPath(new URL("../../../../examples/", import.meta.url));
export const buildpackDir = (name: string) => join(examplesDir, "buildpacks", name);
export const appDir = (name: string) => join(examplesDir, "apps", name);

export async function temporary(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `berth-test-herokuish-${prefix}-`));
}

/** Copies an example app into a fresh directory (tests may add files to it). */
export async function sourceOf(app: string, extra: Record<string, string> = {}): Promise<Source> {
  const dir = await temporary("source");
  await cp(appDir(app), dir, { recursive: true });
  for (const [name, content] of Object.entries(extra)) await writeFile(join(dir, name), content);
  return { kind: "dir", dir };
}

export async function sourceFromFiles(files: Record<string, string>): Promise<Source> {
  const dir = await temporary("source");
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return { kind: "dir", dir };
}

/** A git repository made from a directory, committed as `main`, optionally tagged. */
export async function gitRepoOf(dir: string, tag?: string): Promise<string> {
  const repo = await temporary("repo");
  await cp(dir, repo, { recursive: true });
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=Berth Test", "-c", "user.email=test@berth.invalid", ...args], { cwd: repo });
  await git("init", "--quiet", "--initial-branch=main");
  await git("add", "-A");
  await git("commit", "--quiet", "-m", "buildpack");
  if (tag) await git("tag", tag);
  return repo;
}

export async function gitCommitAll(repo: string, message: string): Promise<void> {
  await run(
    "git",
    [
      "-c",
      "user.name=Berth Test",
      "-c",
      "user.email=test@berth.invalid",
      "commit",
      "-q",
      "-a",
      "-m",
      message,
    ],
    {
      cwd: repo,
    },
  );
}

/** A copy of an example buildpack that a test may break. */
export async function buildpackCopy(name: string): Promise<string> {
  const dir = await temporary(`buildpack-${name}`);
  await cp(buildpackDir(name), dir, { recursive: true });
  return dir;
}

export async function writeScript(path: string, body: string): Promise<void> {
  await writeFile(path, body);
  await chmod(path, 0o755);
}

export function appSettings(name: string, plugins: AppSettings["plugins"] = {}): AppSettings {
  return { ...defaultAppSettings(name), plugins };
}

export interface BuildRun {
  artifact: Artifact | undefined;
  error: unknown;
  output: string;
}

/** Runs the platform's build hook as the pipeline would. */
export async function buildThrough(
  platform: Platform,
  app: AppSettings,
  source: Source,
  version: number,
  options: { builder?: string; config?: Record<string, string> } = {},
): Promise<BuildRun> {
  const { output, text } = collectOutput();
  const context: BuildContext = {
    platform,
    app,
    output,
    signal: new AbortController().signal,
    source,
    version,
    builder: options.builder,
    config: options.config ?? {},
  };
  try {
    const artifact = await platform.hooks.build.promise(context);
    return { artifact, error: undefined, output: text() };
  } catch (error) {
    return { artifact: undefined, error, output: text() };
  }
}

export function newPlatform(dataDir: string): Platform {
  return new Platform({ dataDir, defaults: { scheduler: "none" } });
}

/** Containers whose name starts with the prefix (build containers are `berth-build-<app>-…`). */
export async function containersNamed(prefix: string): Promise<string[]> {
  const containers = await docker.listContainers({ all: true });
  return containers.flatMap((container) =>
    container.Names.map((name) => name.replace(/^\//, "")).filter((name) => name.startsWith(prefix)),
  );
}

export async function imageExists(image: string): Promise<boolean> {
  return docker
    .getImage(image)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

export async function removeImagesOf(repository: string): Promise<void> {
  const images = await docker.listImages({ filters: { reference: [`${repository}:*`] } });
  for (const image of images) {
    for (const tag of image.RepoTags ?? [])
      await docker
        .getImage(tag)
        .remove({ force: true })
        .catch(() => {});
  }
}

/** `docker run --rm image args…`, returning exit code and output. */
export async function runOnce(
  image: string,
  args: string[],
  env: string[] = [],
): Promise<{ exitCode: number; output: string }> {
  try {
    const { stdout, stderr } = await run(
      "docker",
      ["run", "--rm", ...env.flatMap((entry) => ["-e", entry]), image, ...args],
      {
        timeout: 60_000,
      },
    );
    return { exitCode: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return {
      exitCode: typeof failure.code === "number" ? failure.code : 1,
      output: `${failure.stdout ?? ""}${failure.stderr ?? ""}`,
    };
  }
}

export interface RunningImage {
  url: string;
  container: Docker.Container;
  stop(): Promise<void>;
}

/** Starts `image` with `/start <type>` (or its CMD), PORT=5000 published on 127.0.0.1, and waits until it answers. */
export async function serve(image: string, name: string, command?: string[]): Promise<RunningImage> {
  const container = await docker.createContainer({
    name,
    Image: image,
    ...(command ? { Cmd: command } : {}),
    Env: ["PORT=5000"],
    ExposedPorts: { "5000/tcp": {} },
    HostConfig: { PortBindings: { "5000/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] } },
  });
  const stop = async () => {
    await container.remove({ force: true }).catch(() => {});
  };
  try {
    await container.start();
    const info = await container.inspect();
    const port = info.NetworkSettings.Ports["5000/tcp"]?.[0]?.HostPort;
    const url = `http://127.0.0.1:${port}/`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      // A bounded wait per attempt: docker-proxy accepts before the container answers.
      const answered = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
        (response) => response.ok,
        () => false,
      );
      if (answered) break;
      if (Date.now() > deadline) throw new Error(`${image} did not answer on ${url}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { url, container, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
