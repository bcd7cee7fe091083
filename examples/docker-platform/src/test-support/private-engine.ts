import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";

const run = promisify(execFile);

/**
 * A Docker engine of the test's own, so a test can stop and start "dockerd" without disturbing the shared
 * engine other tests use: own socket, data and exec roots, and its own network namespace. The namespace
 * matters: a second dockerd on the host's network deletes or rewires interfaces the shared engine relies on
 * (its `docker0` bridge). Its containers' published ports are therefore on the namespace's 127.0.0.1, reached
 * with `request`, which runs curl inside that namespace.
 */
export class PrivateEngine {
  readonly root: string;
  readonly socketPath: string;
  readonly docker: Docker;
  #process: ChildProcess | undefined;

  constructor(root: string) {
    this.root = root;
    this.socketPath = join(root, "docker.sock");
    this.docker = new Docker({ socketPath: this.socketPath });
  }

  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const log = await open(join(this.root, "dockerd.log"), "a");
    const options = [
      "--host",
      `unix://${this.socketPath}`,
      "--data-root",
      join(this.root, "data"),
      "--exec-root",
      join(this.root, "exec"),
      "--pidfile",
      join(this.root, "dockerd.pid"),
      "--ip",
      "127.0.0.1",
      "--iptables=false",
      "--ip-masq=false",
      "--default-address-pool",
      "base=10.213.0.0/16,size=24",
      "--shutdown-timeout",
      "3",
    ];
    // `unshare --net` gives dockerd a network namespace of its own (loopback brought up first); detached makes a
    // session of its own, like `setsid dockerd … &`. unshare and sh exec, so the child's pid is dockerd's.
    this.#process = spawn(
      "unshare",
      ["--net", "--", "sh", "-c", 'ip link set lo up && exec dockerd "$@"', "sh", ...options],
      { detached: true, stdio: ["ignore", log.fd, log.fd] },
    );
    await log.close();
    const deadline = Date.now() + 30_000;
    for (let delay = 50; ; delay = Math.min(delay * 2, 250)) {
      if (
        await this.docker.ping().then(
          () => true,
          () => false,
        )
      )
        return;
      if (this.#process.exitCode !== null || Date.now() > deadline) {
        throw new Error(`the private dockerd did not come up; see ${join(this.root, "dockerd.log")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** SIGTERM, as an init system would stop the engine; resolves once the process is gone. */
  async stop(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }

  /** GET `http://127.0.0.1:<port>/` inside the engine's network namespace. */
  async request(port: number): Promise<string> {
    const pid = this.#process?.pid;
    if (pid === undefined) throw new Error("the private engine is not running");
    const { stdout } = await run("nsenter", [
      `--net=/proc/${pid}/ns/net`,
      "--",
      "curl",
      "--silent",
      "--show-error",
      "--fail",
      "--max-time",
      "5",
      `http://127.0.0.1:${port}/`,
    ]);
    return stdout;
  }

  /** Copies an image from the shared engine (there is no registry to pull from). */
  async loadImage(reference: string): Promise<void> {
    await run("sh", [
      "-c",
      'docker save "$1" | docker -H "unix://$2" load -q',
      "sh",
      reference,
      this.socketPath,
    ]);
  }

  /** Removes everything this engine holds, stops it, and deletes its directories. */
  async destroy(): Promise<void> {
    if (this.#process) {
      const containers = await this.docker.listContainers({ all: true }).catch(() => []);
      await Promise.all(
        containers.map((container) =>
          this.docker
            .getContainer(container.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      );
      await this.stop();
    }
    await rm(this.root, { recursive: true, force: true }).catch(() => undefined);
  }
}
