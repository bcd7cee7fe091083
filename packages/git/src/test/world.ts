import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Platform } from "@berth/core";
import { FakeBuilderPlugin, FakeProxyPlugin, FakeSchedulerPlugin } from "@berth/core/testing";
import { type GitOptions, GitPlugin, type Listening } from "../plugin.js";
import type { SshRefusal } from "../ssh-server.js";

/** Test support: a Platform with the fake pipeline, the git plugin serving HTTP and SSH, and real git/ssh clients. */

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 90_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on("error", () => {
      // The command exited without reading its input.
    });
    child.stdin.end(options.input ?? "");
  });
}

/** A running command whose output can be read while it runs. */
export interface LiveRun {
  stderr(): string;
  done: Promise<RunResult>;
}

export function runLive(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv },
): LiveRun {
  let stderr = "";
  let stdout = "";
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  return { stderr: () => stderr, done };
}

/** Polls `condition` until it holds or the deadline passes; returns whether it held. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

/** The `remote:` lines of git's output, without the prefix. */
export function remoteLines(stderr: string): string[] {
  return stderr
    .split(/\r?\n|\r/)
    .filter((line) => line.startsWith("remote: "))
    .map((line) => line.slice("remote: ".length).trimEnd())
    .filter((line) => line.trim() !== "");
}

export type Transport = "http" | "ssh";

export interface World {
  root: string;
  dataDir: string;
  platform: Platform;
  plugin: GitPlugin;
  scheduler: FakeSchedulerPlugin["scheduler"];
  proxy: FakeProxyPlugin["proxy"];
  builder: FakeBuilderPlugin["builder"];
  http: Listening;
  ssh: Listening;
  adminToken: string;
  /** SSH requests the server refused, in order. */
  refusals: SshRefusal[];
  /** Private key file of the admin SSH key. */
  adminKey: string;
  /** Environment for git and ssh clients: temp HOME, no prompts, an identity. */
  env: NodeJS.ProcessEnv;
  url(transport: Transport, app: string, options?: { user?: string; token?: string }): string;
  /** Environment for a git command using `transport`, with `key` as the SSH identity. */
  gitEnv(transport: Transport, key?: string): NodeJS.ProcessEnv;
  git(args: string[], options?: { cwd?: string; transport?: Transport; key?: string }): Promise<RunResult>;
  gitLive(args: string[], options?: { cwd?: string; transport?: Transport; key?: string }): LiveRun;
  /** The commit a ref of the app's repository points at, read with `git ls-remote` over `transport`. */
  remoteRef(transport: Transport, app: string, ref?: string): Promise<string | undefined>;
  /** A new working repository with the given files committed on `main`. */
  repo(files: Record<string, string>, branch?: string): Promise<string>;
  commit(dir: string, files: Record<string, string>, message?: string): Promise<string>;
  newKey(name: string): Promise<{ privateKey: string; publicKey: string }>;
  sshCommand(key: string): string;
  close(): Promise<void>;
}

export async function createWorld(options: GitOptions = {}): Promise<World> {
  const root = await mkdtemp(join(tmpdir(), "berth-git-test-"));
  const dataDir = join(root, "data");
  const home = join(root, "home");
  await mkdir(home, { recursive: true });
  const platform = new Platform({
    dataDir,
    defaults: { scheduler: "fake", proxy: "fake" },
    checks: { uptime: 0.05 },
  });
  const builderPlugin = new FakeBuilderPlugin();
  const schedulerPlugin = new FakeSchedulerPlugin();
  const proxyPlugin = new FakeProxyPlugin();
  const refusals: SshRefusal[] = [];
  const plugin = new GitPlugin({
    submoduleProtocols: ["https", "http", "ssh", "git", "file"],
    onSshRefused: (refusal) => refusals.push(refusal),
    ...options,
  });
  platform.use(builderPlugin).use(schedulerPlugin).use(proxyPlugin).use(plugin);
  const http = await plugin.listenHttp();
  const ssh = await plugin.listenSsh();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    GIT_TERMINAL_PROMPT: "0",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "Berth Test",
    GIT_AUTHOR_EMAIL: "test@berth.invalid",
    GIT_COMMITTER_NAME: "Berth Test",
    GIT_COMMITTER_EMAIL: "test@berth.invalid",
    LANG: "C",
  };
  let serial = 0;
  const sshCommand = (key: string) =>
    `ssh -i ${key} -p ${ssh.port} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
  const newKey = async (name: string) => {
    const privateKey = join(root, "keys", name);
    await mkdir(dirname(privateKey), { recursive: true });
    const result = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", privateKey]);
    if (result.code !== 0) throw new Error(`ssh-keygen failed: ${result.stderr}`);
    const { readFile } = await import("node:fs/promises");
    return { privateKey, publicKey: (await readFile(`${privateKey}.pub`, "utf8")).trim() };
  };
  const admin = await newKey("admin");
  await plugin.keys.add("admin", admin.publicKey);
  const { token: adminToken } = await plugin.tokens.create("admin");

  const gitEnv = (transport: Transport, key = admin.privateKey): NodeJS.ProcessEnv =>
    transport === "ssh" ? { ...env, GIT_SSH_COMMAND: sshCommand(key) } : env;
  const gitCommand = (
    args: string[],
    gitOptions: { cwd?: string; transport?: Transport; key?: string } = {},
  ) =>
    run("git", args, {
      ...(gitOptions.cwd ? { cwd: gitOptions.cwd } : {}),
      env: gitEnv(gitOptions.transport ?? "http", gitOptions.key),
    });
  const commit = async (dir: string, files: Record<string, string>, message = "change") => {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    const add = await gitCommand(["add", "-A"], { cwd: dir });
    if (add.code !== 0) throw new Error(add.stderr);
    const done = await gitCommand(["commit", "-q", "--allow-empty", "-m", message], { cwd: dir });
    if (done.code !== 0) throw new Error(done.stderr);
    return (await gitCommand(["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
  };
  const urlFor = (transport: Transport, app: string, credentials: { user?: string; token?: string } = {}) =>
    transport === "http"
      ? `http://${credentials.user ?? "admin"}:${credentials.token ?? adminToken}@127.0.0.1:${http.port}/${app}.git`
      : `ssh://berth@127.0.0.1:${ssh.port}/${app}.git`;
  return {
    root,
    dataDir,
    platform,
    plugin,
    scheduler: schedulerPlugin.scheduler,
    proxy: proxyPlugin.proxy,
    builder: builderPlugin.builder,
    http,
    ssh,
    adminToken,
    refusals,
    adminKey: admin.privateKey,
    env,
    url: urlFor,
    gitEnv,
    git: gitCommand,
    gitLive: (args, gitOptions = {}) =>
      runLive("git", args, {
        ...(gitOptions.cwd ? { cwd: gitOptions.cwd } : {}),
        env: gitEnv(gitOptions.transport ?? "http", gitOptions.key),
      }),
    remoteRef: async (transport, app, ref = "refs/heads/main") => {
      const listed = await gitCommand(["ls-remote", urlFor(transport, app), ref], { transport });
      if (listed.code !== 0) throw new Error(listed.stderr);
      return listed.stdout.split(/\s+/)[0] || undefined;
    },
    commit,
    repo: async (files, branch = "main") => {
      serial += 1;
      const dir = join(root, "work", `repo-${serial}`);
      await mkdir(dir, { recursive: true });
      const init = await gitCommand(["init", "-q", `--initial-branch=${branch}`, dir]);
      if (init.code !== 0) throw new Error(init.stderr);
      await commit(dir, files, "initial");
      return dir;
    },
    newKey,
    sshCommand,
    close: async () => {
      await plugin.close();
      for (const app of await platform.apps.list()) {
        await schedulerPlugin.scheduler.removeApp(app);
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A raw HTTP request with the path sent exactly as given (fetch would normalise `..` and `%2e%2e`). */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: "127.0.0.1", port, method, path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    request.on("error", reject);
    request.end(body);
  });
}

export function basicAuth(user: string, token: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}` };
}

/** Every path under `root` (relative), skipping the given top-level directories. */
export async function listTree(root: string, skip: string[] = []): Promise<string[]> {
  const entries = await readdir(root, { recursive: true });
  return entries
    .map((entry) => String(entry))
    .filter((entry) => !skip.some((prefix) => entry === prefix || entry.startsWith(`${prefix}/`)))
    .sort();
}
