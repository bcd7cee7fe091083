import { createHash } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError, type BerthPlugin, type Platform } from "@berth/core";
import type { Server as SshServer } from "ssh2";
import { KeyStore, TokenStore } from "./access.js";
import { authorizedKeysLine } from "./authorized-keys.js";
import { BerthSocket } from "./berth-socket.js";
import { CommandRegistry } from "./commands.js";
import { type ExtractedSource, type ExtractSourceOptions, extractSource } from "./extract-source.js";
import { HOOK_CLIENT_SOURCE } from "./hook-script.js";
import { createHttpHandler, type GitHttpHandler, type HttpHandlerOptions } from "./http.js";
import { registerKeyCommands } from "./key-commands.js";
import { PushReceiver } from "./receiver.js";
import { Repositories } from "./repositories.js";
import { createSshServer, loadHostKey, type SshRefusal } from "./ssh-server.js";
import { removeLeftovers, sourceWorkDirs } from "./work-dirs.js";

export interface GitOptions {
  /** Where repositories, keys, tokens and the host key live; default the platform's data dir. */
  dataDir?: string;
  /** Create the app on the first push to an unknown, valid name; default true. */
  autoCreate?: boolean;
  /** The unix socket hooks call back on; default `<dataDir>/git/berth.sock` (a temp path when that is too long). */
  socketPath?: string;
  /**
   * Where sources are extracted for builds; default a private directory on the `/dev/shm` tmpfs when there is
   * one (falling back when it is full), else `<dataDir>/git/work`.
   */
  workDir?: string;
  /** URL schemes submodules may be fetched with; default https, http, ssh and git (see `extractSource`). */
  submoduleProtocols?: string[];
  /** The registry SSH commands are looked up in; default a new one (`plugin.commands`). */
  commands?: CommandRegistry;
  /** Told of every SSH request refused (shell, pty, forwarding…), for audit logs. */
  onSshRefused?: (refusal: SshRefusal) => void;
}

export interface ListenOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
}

export interface Listening {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Unix socket paths are limited to about 107 bytes. */
const SOCKET_PATH_LIMIT = 100;

/**
 * Push-to-deploy for a Platform: one bare repository per app, git over smart HTTP and SSH, and a deploy from
 * the pre-receive step of every push to an app's deploy branch.
 */
export class GitPlugin implements BerthPlugin {
  readonly name = "git";
  readonly commands: CommandRegistry;
  readonly #options: GitOptions;
  #state:
    | {
        dataDir: string;
        gitDir: string;
        repositories: Repositories;
        tokens: TokenStore;
        keys: KeyStore;
        receiver: PushReceiver;
        socket: BerthSocket;
        hookScript: string;
      }
    | undefined;
  #starting: Promise<void> | undefined;
  readonly #servers = new Set<Listening>();

  constructor(options: GitOptions = {}) {
    this.#options = options;
    this.commands = options.commands ?? new CommandRegistry();
    registerKeyCommands(this.commands, () => this.keys);
  }

  apply(platform: Platform): void {
    const dataDir = this.#options.dataDir ?? platform.dataDir;
    const gitDir = join(dataDir, "git");
    const repositories = new Repositories(join(dataDir, "repos"));
    const tokens = new TokenStore(join(gitDir, "tokens.json"));
    const keys = new KeyStore(join(gitDir, "keys.json"));
    const defaultSocket = join(gitDir, "berth.sock");
    const socketPath =
      this.#options.socketPath ??
      (defaultSocket.length <= SOCKET_PATH_LIMIT
        ? defaultSocket
        : join(
            tmpdir(),
            `berth-git-${createHash("sha256").update(gitDir).digest("hex").slice(0, 16)}`,
            "berth.sock",
          ));
    const hookScript = join(gitDir, "pre-receive.cjs");
    const receiver = new PushReceiver(platform, repositories, {
      autoCreate: this.#options.autoCreate ?? true,
      workDirs: async () =>
        this.#options.workDir ? [this.#options.workDir] : sourceWorkDirs(join(gitDir, "work")),
      submoduleProtocols: this.#options.submoduleProtocols,
      hookEnvironment: async () => {
        await this.start();
        return {
          BERTH_HOOK_SOCKET: socketPath,
          BERTH_HOOK_SCRIPT: hookScript,
          BERTH_NODE: process.execPath,
        };
      },
    });
    const socket = new BerthSocket({ path: socketPath, receiver, keys, commands: this.commands });
    this.#state = { dataDir, gitDir, repositories, tokens, keys, receiver, socket, hookScript };

    platform.hooks.appDestroyed.tapPromise(this.name, async ({ app, output }) => {
      await repositories.remove(app.name);
      output.detail(`Removed the git repository of ${app.name}`);
    });
    platform.hooks.appRenamed.tapPromise(this.name, async ({ from, app }) => {
      await repositories.rename(from, app.name);
    });
  }

  #require() {
    if (!this.#state) {
      throw new BerthError(
        "PLUGIN_NOT_FOUND",
        "The git plugin is not applied yet: call platform.use(git()) first.",
      );
    }
    return this.#state;
  }

  /** Repository paths and helpers. */
  get repositories(): Repositories {
    return this.#require().repositories;
  }

  /** HTTP tokens (stored hashed). */
  get tokens(): TokenStore {
    return this.#require().tokens;
  }

  /** SSH public keys. */
  get keys(): KeyStore {
    return this.#require().keys;
  }

  /** The unix socket git hooks and `berth-git-shell` reach this process on. */
  get socketPath(): string {
    return this.#require().socket.path;
  }

  /** Opens the hook socket; called by every server helper and handler on first use. */
  start(): Promise<void> {
    const state = this.#require();
    this.#starting ??= (async () => {
      // Keys, tokens and the socket live here: only Berth's own user may look inside.
      await mkdir(state.gitDir, { recursive: true, mode: 0o700 });
      await chmod(state.gitDir, 0o700);
      await writeFile(state.hookScript, HOOK_CLIENT_SOURCE, { mode: 0o644 });
      await state.socket.listen();
      await removeLeftovers(
        this.#options.workDir ? [this.#options.workDir] : await sourceWorkDirs(join(state.gitDir, "work")),
      );
    })();
    this.#starting.catch(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  /** A `(request, response)` handler serving smart HTTP; mount it in any Node `http` server. */
  httpHandler(options: HttpHandlerOptions = {}): GitHttpHandler {
    const state = this.#require();
    return createHttpHandler(state.receiver, state.tokens, options);
  }

  /** A standalone smart HTTP server; HTTPS when given `tls` (PEM key and certificate). */
  async listenHttp(
    options: ListenOptions &
      HttpHandlerOptions & { tls?: { key: string | Buffer; cert: string | Buffer } } = {},
  ): Promise<Listening> {
    await this.start();
    const handler = this.httpHandler(options);
    const server = options.tls
      ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
      : createServer(handler);
    // A large push over a slow link may take longer than Node's default of 5 minutes to upload.
    server.requestTimeout = 0;
    return this.#listen(server, options, () => server.closeAllConnections());
  }

  /** The embedded SSH server; the host key is generated once under `<dataDir>/git/`. */
  async listenSsh(options: ListenOptions & { hostKeyPath?: string } = {}): Promise<Listening> {
    const state = this.#require();
    await this.start();
    const hostKey = await loadHostKey(options.hostKeyPath ?? join(state.gitDir, "ssh_host_ed25519_key"));
    const server = createSshServer({
      receiver: state.receiver,
      keys: state.keys,
      commands: this.commands,
      hostKey,
      ...(this.#options.onSshRefused ? { onRefused: this.#options.onSshRefused } : {}),
    });
    return this.#listen(server, options);
  }

  async #listen(
    server: HttpServer | SshServer,
    options: ListenOptions,
    closeConnections?: () => void,
  ): Promise<Listening> {
    const host = options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const listening: Listening = {
      host,
      port: address.port,
      close: async () => {
        this.#servers.delete(listening);
        closeConnections?.();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
    this.#servers.add(listening);
    return listening;
  }

  /** An `authorized_keys` line for a key in the store, for operators who use their system sshd. */
  async authorizedKeysLine(keyName: string, options: { command?: string } = {}): Promise<string> {
    const record = await this.keys.get(keyName);
    if (!record) throw new BerthError("KEY_NOT_FOUND", `No key named ${keyName}; add it first (keys:add).`);
    return authorizedKeysLine({
      keyName,
      publicKey: record.publicKey,
      socketPath: this.socketPath,
      ...(options.command ? { command: options.command } : {}),
    });
  }

  /** The source of `rev` of an app's repository in a clean directory (for rebuilds); remove it when done. */
  async extractSource(
    app: string,
    rev: string,
    options: ExtractSourceOptions = {},
  ): Promise<ExtractedSource> {
    const state = this.#require();
    const [workDir] = this.#options.workDir
      ? [this.#options.workDir]
      : await sourceWorkDirs(join(state.gitDir, "work"));
    return extractSource(state.repositories.path(app), rev, {
      workDir,
      ...(this.#options.submoduleProtocols ? { submoduleProtocols: this.#options.submoduleProtocols } : {}),
      ...options,
    });
  }

  /** Stops every server this plugin started and the hook socket. */
  async close(): Promise<void> {
    await Promise.all([...this.#servers].map((server) => server.close()));
    if (this.#state && this.#starting) {
      await this.#starting.catch(() => undefined);
      await this.#state.socket.close();
      this.#starting = undefined;
    }
  }
}

/** `platform.use(git({ autoCreate: false }))` */
export function git(options: GitOptions = {}): GitPlugin {
  return new GitPlugin(options);
}
