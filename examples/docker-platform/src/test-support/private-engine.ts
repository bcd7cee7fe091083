import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";

const run = promisify(execFile);

/**
 * A Docker engine of the test's own (own socket, data and exec roots), so a test can stop and start "dockerd"
 * without disturbing the shared engine other tests use. It must not touch anything of the host's that the
 * shared engine uses: no iptables rules, its own address pool, and its own default bridge interface created
 * here — `--bridge=none` would make dockerd delete the host's `docker0`, which the shared engine needs.
 * Published ports still bind 127.0.0.1 through docker-proxy.
 */
export class PrivateEngine {
  readonly root: string;
  readonly socketPath: string;
  readonly docker: Docker;
  /** The engine's default bridge: a host interface of its own (at most 15 characters). */
  readonly bridge: string;
  readonly #bridgeAddress: string;
  #bridgeCreated = false;
  #process: ChildProcess | undefined;

  constructor(root: string) {
    this.root = root;
    this.socketPath = join(root, "docker.sock");
    this.docker = new Docker({ socketPath: this.socketPath });
    const tag = process.pid % 250;
    this.bridge = `berth-pe${process.pid.toString(36).slice(-6)}`;
    this.#bridgeAddress = `10.214.${tag}.1/24`;
  }

  async #createBridge(): Promise<void> {
    if (this.#bridgeCreated) return;
    await run("ip", ["link", "add", "name", this.bridge, "type", "bridge"]);
    this.#bridgeCreated = true;
    await run("ip", ["addr", "add", this.#bridgeAddress, "dev", this.bridge]);
    await run("ip", ["link", "set", "dev", this.bridge, "up"]);
  }

  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await this.#createBridge();
    const log = await open(join(this.root, "dockerd.log"), "a");
    // detached: a session of its own, like `setsid dockerd … &`.
    this.#process = spawn(
      "dockerd",
      [
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
        "--ip-forward=false",
        "--bridge",
        this.bridge,
        "--default-address-pool",
        "base=10.213.0.0/16,size=24",
        "--shutdown-timeout",
        "3",
      ],
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
    if (this.#bridgeCreated) {
      await run("ip", ["link", "delete", this.bridge]).catch(() => undefined);
      this.#bridgeCreated = false;
    }
    await rm(this.root, { recursive: true, force: true }).catch(() => undefined);
  }
}
