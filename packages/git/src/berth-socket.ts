import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { BerthError, describeError, Output } from "@berth/core";
import { type Identity, type KeyStore, keyIdentity } from "./access.js";
import type { CommandRegistry } from "./commands.js";
import { parseExecCommand } from "./exec-command.js";
import { type Frame, onFrames, sendFrame } from "./frames.js";
import type { PushReceiver, RefUpdate } from "./receiver.js";

export interface BerthSocketOptions {
  path: string;
  receiver: PushReceiver;
  keys: KeyStore;
  commands: CommandRegistry;
}

/**
 * The unix socket through which git hooks (and the `berth-git-shell` forced command of a system sshd) reach the
 * Berth process. It lives in a 0700 directory: only Berth's own user can connect, and a hook must also show the
 * one-push secret of a session this process opened.
 */
export class BerthSocket {
  readonly path: string;
  readonly #options: BerthSocketOptions;
  readonly #connections = new Set<Socket>();
  #server: Server | undefined;

  constructor(options: BerthSocketOptions) {
    this.path = options.path;
    this.#options = options;
  }

  async listen(): Promise<void> {
    if (this.#server) return;
    const directory = dirname(this.path);
    await mkdir(directory, { recursive: true, mode: 0o700 });
    // The directory is what keeps other local users off the socket: it must be ours and not a planted symlink.
    const info = await lstat(directory);
    const uid = process.getuid?.();
    if (!info.isDirectory() || (uid !== undefined && info.uid !== uid)) {
      throw new BerthError(
        "SOCKET_UNSAFE",
        `${directory} is not a directory owned by this user; remove it or choose another socketPath.`,
      );
    }
    await chmod(directory, 0o700);
    if (await answers(this.path)) {
      throw new BerthError(
        "SOCKET_IN_USE",
        `Another Berth process serves ${this.path}; stop it, or give this one its own data dir.`,
      );
    }
    await rm(this.path, { force: true });
    const server = createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await chmod(this.path, 0o600);
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    for (const socket of this.#connections) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.path, { force: true });
  }

  #accept(socket: Socket): void {
    this.#connections.add(socket);
    socket.on("close", () => this.#connections.delete(socket));
    socket.on("error", () => socket.destroy());
    let started = false;
    let stdin: PassThrough | undefined;
    let onDone: (() => void) | undefined;
    onFrames(
      socket,
      (frame) => {
        if (!started) {
          started = true;
          if (frame.type === "hook") void this.#hook(socket, frame);
          else if (frame.type === "shell") {
            stdin = new PassThrough();
            void this.#shell(socket, frame, stdin, (done) => {
              onDone = done;
            });
          } else socket.destroy();
          return;
        }
        if (frame.type === "stdin" && typeof frame.data === "string")
          stdin?.write(Buffer.from(frame.data, "base64"));
        else if (frame.type === "stdin-end") stdin?.end();
        else if (frame.type === "done") onDone?.();
      },
      () => socket.destroy(),
    );
    socket.on("close", () => {
      stdin?.end();
      onDone?.();
    });
  }

  async #hook(socket: Socket, frame: Frame): Promise<void> {
    const { receiver } = this.#options;
    const output = new Output((text) => sendFrame(socket, { type: "output", text }));
    if (!receiver.knows(frame.token) || !Array.isArray(frame.updates)) {
      output.warn("This push is not known to Berth; nothing was deployed.");
      sendFrame(socket, { type: "exit", code: 1 });
      socket.end();
      return;
    }
    const updates: RefUpdate[] = (frame.updates as unknown[]).map((update) => {
      const record = (update ?? {}) as Record<string, unknown>;
      return { oldRev: String(record.oldRev), newRev: String(record.newRev), ref: String(record.ref) };
    });
    const env: Record<string, string> = {};
    if (frame.env && typeof frame.env === "object") {
      for (const [name, value] of Object.entries(frame.env as Record<string, unknown>)) {
        if (typeof value === "string") env[name] = value;
      }
    }
    const code = await receiver.preReceive(frame.token as string, updates, env, output);
    sendFrame(socket, { type: "exit", code });
    socket.end();
  }

  /** A forced command of a system sshd: `berth-git-shell KEYNAME` relays SSH_ORIGINAL_COMMAND here. */
  async #shell(
    socket: Socket,
    frame: Frame,
    stdin: PassThrough,
    setDone: (done: () => void) => void,
  ): Promise<void> {
    const fail = (message: string, code = 1) => {
      sendFrame(socket, { type: "stderr", data: Buffer.from(`${message}\n`).toString("base64") });
      sendFrame(socket, { type: "exit", code });
      socket.end();
    };
    try {
      const record = typeof frame.key === "string" ? await this.#options.keys.get(frame.key) : undefined;
      if (!record) return fail("This key is not (or no longer) allowed; ask an admin to add it.");
      const identity: Identity = keyIdentity(record);
      const request = parseExecCommand(typeof frame.command === "string" ? frame.command : "");
      if (request.kind === "git") {
        const session = await this.#options.receiver.open(identity, request.app, request.service);
        setDone(() => session.finish());
        sendFrame(socket, {
          type: "spawn",
          service: session.service,
          repoDir: session.repoDir,
          env: session.env,
        });
        return;
      }
      sendFrame(socket, { type: "command" });
      const stream = (type: "stdout" | "stderr") =>
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            sendFrame(socket, { type, data: Buffer.from(chunk).toString("base64") });
            callback();
          },
        });
      const abort = new AbortController();
      socket.once("close", () => abort.abort());
      const code = await this.#options.commands.run(request.words, {
        user: identity,
        stdin,
        stdout: stream("stdout"),
        stderr: stream("stderr"),
        signal: abort.signal,
      });
      sendFrame(socket, { type: "exit", code });
      socket.end();
    } catch (error) {
      fail(` !     ${describeError(error)}`);
    }
  }
}

/** Whether something listens on the socket path (a live Berth process) rather than a leftover file. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
