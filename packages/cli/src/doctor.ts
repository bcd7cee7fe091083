import { execFile } from "node:child_process";
import { access, constants, mkdir, statfs } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { promisify } from "node:util";
import Docker from "dockerode";
import { BerthClient, type ClientOptions } from "./api/client.js";
import type { CliIo } from "./cli.js";
import type { ResolvedConfig } from "./config.js";

const run = promisify(execFile);

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** Not fatal: Berth works, something optional is missing. */
  warning?: boolean;
  detail: string;
  fix?: string;
}

async function version(command: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await run(command, args, { timeout: 10_000 });
    return (stdout || stderr).trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Checks everything Berth relies on and says what to fix; usable with or without a running daemon. */
export async function doctorChecks(
  config: ResolvedConfig | undefined,
  client: ClientOptions | undefined,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const docker = new Docker();
  try {
    const info = await docker.version();
    checks.push({
      name: "docker",
      ok: true,
      detail: `Docker Engine ${info.Version} (API ${info.ApiVersion})`,
    });
    for (const [image, needed] of [
      ["berth/busybox:latest", false],
      ["berth/stack:bookworm", false],
    ] as const) {
      const present = await docker
        .getImage(image)
        .inspect()
        .then(
          () => true,
          () => false,
        );
      checks.push({
        name: `image ${image}`,
        ok: present || !needed,
        warning: !present,
        detail: present ? "present" : "missing",
        ...(present
          ? {}
          : {
              fix: image.startsWith("berth/stack")
                ? "bash scripts/setup-host --stack && berth stack:build (buildpack apps need it)"
                : "bash scripts/setup-host",
            }),
      });
    }
  } catch (error) {
    checks.push({
      name: "docker",
      ok: false,
      detail: `the engine does not answer (${(error as Error).message})`,
      fix: "start it: dockerd --ip 127.0.0.1 & (or bash scripts/setup-host); install: apt-get install docker.io",
    });
  }
  const nginx = await version("nginx", ["-v"]);
  checks.push(
    nginx
      ? { name: "nginx", ok: true, detail: nginx.replace(/^nginx version: /, "") }
      : { name: "nginx", ok: false, detail: "not found", fix: "apt-get install nginx" },
  );
  const git = await version("git", ["--version"]);
  checks.push(
    git
      ? { name: "git", ok: true, detail: git }
      : { name: "git", ok: false, detail: "not found", fix: "apt-get install git" },
  );
  const ssh = await version("ssh", ["-V"]);
  checks.push(
    ssh
      ? { name: "ssh client", ok: true, detail: ssh }
      : {
          name: "ssh client",
          ok: true,
          warning: true,
          detail: "not found (only needed to push over SSH)",
          fix: "apt-get install openssh-client",
        },
  );

  if (config) {
    try {
      await mkdir(config.dataDir, { recursive: true });
      await access(config.dataDir, constants.W_OK);
      const disk = await statfs(config.dataDir);
      const free = disk.bavail * disk.bsize;
      const gigabytes = free / 1024 ** 3;
      checks.push({
        name: "disk",
        ok: gigabytes >= 0.5,
        warning: gigabytes < 2,
        detail: `${gigabytes.toFixed(1)} GB free under ${config.dataDir}`,
        ...(gigabytes < 2 ? { fix: "free disk space (docker image prune removes unused images)" } : {}),
      });
    } catch (error) {
      checks.push({
        name: "data dir",
        ok: false,
        detail: `${config.dataDir} is not writable (${(error as Error).message})`,
        fix: "run as a user who owns it, or set dataDir",
      });
    }
  }

  const daemonUp = client ? await new BerthClient(client).health() : false;
  checks.push({
    name: "daemon",
    ok: daemonUp,
    warning: !daemonUp,
    detail: daemonUp
      ? `answers on ${client?.url ?? client?.socket}`
      : `not running (${client?.url ?? client?.socket ?? "no socket configured"})`,
    ...(daemonUp ? {} : { fix: "berth daemon (or npm run demo)" }),
  });
  if (config) {
    for (const [name, port] of [
      ["proxy http port", config.proxy.httpPort],
      ["git http port", config.git.httpPort],
      ["git ssh port", config.git.sshPort],
    ] as const) {
      if (daemonUp) {
        const answers = await portAnswers(port);
        checks.push({
          name,
          ok: answers,
          detail: `${port} ${answers ? "answers" : "does not answer"}`,
          ...(answers ? {} : { fix: "see the daemon's log" }),
        });
      } else {
        const free = await portFree(port);
        checks.push({
          name,
          ok: free,
          detail: `${port} ${free ? "is free" : "is taken by another program"}`,
          ...(free ? {} : { fix: `pick another port in the config, or stop what listens on ${port}` }),
        });
      }
    }
  }
  return checks;
}

export async function runDoctor(options: {
  io: CliIo;
  json: boolean;
  config?: ResolvedConfig;
  client?: ClientOptions;
}): Promise<number> {
  const checks = await doctorChecks(options.config, options.client);
  if (options.json) options.io.stdout(`${JSON.stringify(checks, null, 2)}\n`);
  else {
    for (const check of checks) {
      const mark = !check.ok ? "✗" : check.warning ? "!" : "✓";
      options.io.stdout(
        `${mark} ${check.name.padEnd(26)} ${check.detail}${check.fix ? `\n  ${"".padEnd(26)} fix: ${check.fix}` : ""}\n`,
      );
    }
  }
  return checks.every((check) => check.ok) ? 0 : 1;
}
