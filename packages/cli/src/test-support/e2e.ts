import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/**
 * A real `berth daemon` process for end-to-end tests: its own data dir and loopback ports, the CLI run as a
 * process, git pushes over HTTP and SSH with the real git and ssh clients.
 */

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const PACKAGE_DIR = resolve(here, "../..");
export const REPO_DIR = resolve(PACKAGE_DIR, "../..");
export const BIN = join(PACKAGE_DIR, "dist", "bin.js");

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end, never throwing on a non-zero exit. */
export function runProgram(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolveRun) => {
    const child = spawn(file, args, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 240_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? 1, stdout, stderr });
    });
  });
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** GET through nginx with a Host header, as a browser resolving the app's domain would. */
export function getByHost(port: number, host: string, path = "/"): Promise<HttpAnswer> {
  return new Promise((resolveAnswer, reject) => {
    const outgoing = request(
      { host: "127.0.0.1", port, path, headers: { host }, timeout: 10_000 },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          body += chunk;
        });
        response.on("end", () => resolveAnswer({ status: response.statusCode ?? 0, body }));
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error("timeout")));
    outgoing.on("error", reject);
    outgoing.end();
  });
}

/** Polls `probe` until it returns true or the deadline passes. */
export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  while (Date.now() < deadline) {
    let ready = false;
    try {
      ready = await probe();
    } catch (error) {
      if ((error as Error).message === "the daemon exited") throw error;
    }
    if (ready) return;
    await new Promise((resolveDelay) => setTimeout(resolveDelay, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

export class TestDaemon {
  readonly root: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly ports: { http: number; https: number; git: number; ssh: number; api: number };
  readonly adminToken = `e2e-admin-${randomBytes(12).toString("hex")}`;
  process: ChildProcess | undefined;
  log = "";

  private constructor(root: string, ports: TestDaemon["ports"]) {
    this.root = root;
    this.dataDir = join(root, "data");
    this.configPath = join(root, "berth.config.json");
    this.ports = ports;
  }

  static async create(): Promise<TestDaemon> {
    // Short paths: unix sockets (API, nginx control) must stay under ~100 bytes.
    const root = await mkdtemp(join(tmpdir(), "be2e-"));
    // nginx workers (nobody) must traverse to the data dir.
    await chmod(root, 0o755);
    const ports = {
      http: await freePort(),
      https: await freePort(),
      git: await freePort(),
      ssh: await freePort(),
      api: await freePort(),
    };
    const daemon = new TestDaemon(root, ports);
    await writeFile(
      daemon.configPath,
      JSON.stringify({
        dataDir: daemon.dataDir,
        domain: "berth.localhost",
        api: { port: ports.api, token: daemon.adminToken },
        proxy: { httpPort: ports.http, httpsPort: ports.https, listen: "127.0.0.1" },
        git: { httpPort: ports.git, sshPort: ports.ssh, host: "127.0.0.1" },
      }),
    );
    return daemon;
  }

  get socket(): string {
    return join(this.dataDir, "berth.sock");
  }

  /** Starts `berth daemon` and waits until its API answers. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, [BIN, "daemon", "--config", this.configPath], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: false,
    });
    this.process = child;
    const collect = (chunk: Buffer) => {
      this.log += chunk.toString();
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    try {
      await waitFor(
        async () => {
          if (exited) throw new Error("the daemon exited");
          return (await this.berth(["apps:list"])).code === 0;
        },
        60_000,
        "the daemon's API",
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; daemon log:\n${this.log.slice(-3000)}`);
    }
  }

  /** SIGKILL: no clean-up of any kind, as a crash or an OOM kill. */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolveExit) => child.once("exit", resolveExit));
    child.kill("SIGKILL");
    await exited;
    this.process = undefined;
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolveExit) => child.once("exit", resolveExit));
    child.kill("SIGTERM");
    await exited;
    this.process = undefined;
  }

  /** Runs the CLI as a process against this daemon's socket. */
  berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
    return runProgram(process.execPath, [BIN, ...args], { env: { BERTH_SOCKET: this.socket, ...env } });
  }

  /** Stops the daemon, its nginx, and removes the data dir (apps must be destroyed by the test). */
  async dispose(): Promise<void> {
    await this.stop();
    // Berth's nginx masters (edge and router) outlive the daemon by design; the test ends them by their pid files.
    const runDir = join(this.dataDir, "nginx", "run");
    for (const file of (await readdir(runDir).catch(() => [])).filter((name) => name.endsWith(".pid"))) {
      const pid = Number((await readFile(join(runDir, file), "utf8").catch(() => "")).trim());
      if (!(pid > 0)) continue;
      try {
        process.kill(pid, "SIGQUIT");
        await waitFor(
          async () => {
            try {
              process.kill(pid, 0);
              return false;
            } catch {
              return true;
            }
          },
          15_000,
          "nginx to stop",
        );
      } catch {
        // Already gone.
      }
    }
    await rm(this.root, { recursive: true, force: true });
  }
}

/** A git work tree of a small Dockerfile app whose `/` answers `body`; commit with `commit()`. */
export class AppSource {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(root: string, name: string): Promise<AppSource> {
    const dir = join(root, "sources", name);
    await mkdir(dir, { recursive: true });
    const source = new AppSource(dir);
    await source.git(["init", "-q", "-b", "main"]);
    return source;
  }

  /**
   * Writes the app: busybox httpd with `body` at `/`, `GREETING` at /cgi-bin/greeting, a boot line in the logs,
   * a health check that wants `Hello` in the body, and optional extra Dockerfile lines.
   */
  async write(
    body: string,
    options: { dockerfileExtra?: string; checkDelaySeconds?: number; appJson?: Record<string, unknown> } = {},
  ): Promise<void> {
    await rm(join(this.dir, "www"), { recursive: true, force: true });
    await mkdir(join(this.dir, "www", "cgi-bin"), { recursive: true });
    await writeFile(join(this.dir, "www", "index.html"), `${body}\n`);
    const greeting = join(this.dir, "www", "cgi-bin", "greeting");
    await writeFile(
      greeting,
      `#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf '%s\\n' "$GREETING"\n`,
    );
    await chmod(greeting, 0o755);
    await writeFile(
      join(this.dir, "Dockerfile"),
      [
        "FROM berth/busybox:latest",
        "COPY www /www",
        options.dockerfileExtra ?? "",
        "EXPOSE 5000",
        `CMD ["sh", "-c", "echo \\"booting $BERTH_TEST_MARK\\"; exec httpd -f -p \\"\${PORT:-5000}\\" -h /www"]`,
        "",
      ].join("\n"),
    );
    await writeFile(
      join(this.dir, "app.json"),
      JSON.stringify({
        ...options.appJson,
        healthchecks: {
          web: [
            {
              type: "startup",
              path: "/",
              content: "Hello",
              attempts: 3,
              wait: 1,
              timeout: 3,
              initialDelay: options.checkDelaySeconds ?? 0,
            },
          ],
        },
      }),
    );
  }

  async commit(message: string): Promise<void> {
    await this.git(["add", "-A"]);
    await this.git([
      "-c",
      "user.name=e2e",
      "-c",
      "user.email=e2e@berth.localhost",
      "commit",
      "-q",
      "--allow-empty",
      "-m",
      message,
    ]);
  }

  git(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
    return runProgram("git", args, { cwd: this.dir, env: { GIT_TERMINAL_PROMPT: "0", ...env } });
  }
}

/** An ed25519 key pair for SSH pushes and commands. */
export async function makeKey(
  root: string,
  name: string,
): Promise<{ privateKey: string; publicKeyPath: string }> {
  const privateKey = join(root, `${name}_ed25519`);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", privateKey]);
  return { privateKey, publicKeyPath: `${privateKey}.pub` };
}

export function sshCommand(privateKey: string, port: number): string[] {
  return [
    "-i",
    privateKey,
    "-p",
    String(port),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
  ];
}

export async function copyExample(name: string, target: string): Promise<void> {
  await cp(join(REPO_DIR, "examples", "apps", name), target, { recursive: true });
}

export async function docker(args: string[]): Promise<string> {
  return (await run("docker", args)).stdout.trim();
}
