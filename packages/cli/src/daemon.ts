import { rm } from "node:fs/promises";
import type { Server } from "node:http";
import { BerthError, type BerthPlugin, describeError, Output, Platform } from "@berth/core";
import { createApiServer, listenOnPort, listenOnSocket } from "./api/server.js";
import { ADMIN, ApiTokens, FileTokenBackend, type TokenBackend } from "./api-tokens.js";
import { CLI_SETTINGS } from "./commands/definitions.js";
import type { ResolvedConfig } from "./config.js";
import { ImageBuilderPlugin } from "./image-builder.js";
import type { DaemonServices } from "./services.js";

/** What a composition (the built-in one, or a test's) hands the daemon. */
export interface Composition {
  plugins: BerthPlugin[];
  /** Services the plugins provide (keys, certificates, stack images, sources). */
  services?: Partial<Omit<DaemonServices, "config" | "platform" | "tokens" | "images" | "startedAt">>;
  /** Where API tokens live; default a file under the data dir. @berth/git's TokenStore shares them with pushes. */
  tokens?: () => TokenBackend;
  /** Started after reconcile (git servers, cron); stopped with the daemon. */
  start?(daemon: BerthDaemon): Promise<void>;
  stop?(): Promise<void>;
}

export interface DaemonOptions {
  config: ResolvedConfig;
  /** Plugins and services; default the built-in composition (git, builders, Docker, nginx). */
  compose?: (config: ResolvedConfig, platform: Platform) => Promise<Composition> | Composition;
  /** Where the daemon's own log lines go; default stderr. */
  log?: (line: string) => void;
}

/**
 * The `berth` daemon: a Platform composed from plugins, its API on a unix socket (and optionally TCP), and
 * whatever the composition starts (git over HTTP and SSH, cron). Stopping it leaves apps running.
 */
export class BerthDaemon {
  readonly platform: Platform;
  readonly services: DaemonServices;
  readonly config: ResolvedConfig;
  readonly #servers: Server[] = [];
  readonly #composition: Composition;
  readonly #log: (line: string) => void;
  #tcpPort: number | undefined;
  #unsubscribe: (() => void) | undefined;

  private constructor(
    config: ResolvedConfig,
    platform: Platform,
    composition: Composition,
    log: (line: string) => void,
  ) {
    this.config = config;
    this.platform = platform;
    this.#composition = composition;
    this.#log = log;
    const images = new ImageBuilderPlugin();
    const fileTokens = new FileTokenBackend(config.dataDir);
    if (!config.disable.includes("image")) platform.use(images);
    for (const plugin of composition.plugins) platform.use(plugin);
    this.services = {
      config,
      platform,
      tokens: new ApiTokens(composition.tokens ?? (() => fileTokens), config.api.token),
      images,
      startedAt: Date.now(),
      ...composition.services,
    };
    this.#tapPlatform();
  }

  static async start(options: DaemonOptions): Promise<BerthDaemon> {
    const { config } = options;
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const platform = new Platform({
      dataDir: config.dataDir,
      defaults: config.defaults,
      keepReleases: config.keepReleases,
    });
    const compose = options.compose ?? (await import("./compose.js")).composeBuiltIn;
    const composition = await compose(config, platform);
    const daemon = new BerthDaemon(config, platform, composition, log);
    await daemon.#start();
    return daemon;
  }

  /** The TCP API's port, when enabled. */
  get apiPort(): number | undefined {
    return this.#tcpPort;
  }

  get socketPath(): string {
    return this.config.api.socket;
  }

  async #start(): Promise<void> {
    const started = Date.now();
    this.#log(`berth daemon starting (data ${this.config.dataDir})`);
    const output = new Output((text) => {
      for (const line of text.replace(/\n$/, "").split("\n")) this.#log(line);
    });
    await this.platform.reconcile({ output });
    await this.#composition.start?.(this);
    this.platform.cron.start();

    const socketServer = createApiServer({ services: this.services, authenticate: async () => ADMIN });
    await listenOnSocket(socketServer, this.config.api.socket);
    this.#servers.push(socketServer);
    if (this.config.api.port !== undefined) {
      const tcpServer = createApiServer({
        services: this.services,
        authenticate: (request) => this.services.tokens.authenticate(request.headers.authorization),
      });
      this.#tcpPort = await listenOnPort(tcpServer, this.config.api.host, this.config.api.port);
      this.#servers.push(tcpServer);
    }
    this.#log(
      `berth daemon ready in ${Date.now() - started} ms: API on ${this.config.api.socket}${this.#tcpPort ? ` and ${this.config.api.host}:${this.#tcpPort}` : ""}`,
    );
  }

  #tapPlatform(): void {
    const hooks = this.platform.hooks;
    // apps:lock refuses deploys before any work starts.
    hooks.receive.tapPromise({ name: "cli:deploy-lock", stage: -1000 }, async (context) => {
      if (context.app.plugins[CLI_SETTINGS]?.deployLocked === true) {
        throw new BerthError(
          "APP_LOCKED",
          `Deploys of ${context.app.name} are locked; run apps:unlock ${context.app.name} first.`,
        );
      }
    });
    // Every deploy, however it started (push, CLI, rollback), ends with the URLs it serves.
    hooks.deployed.tapPromise("cli:urls", async (context) => {
      const proxy = this.platform.proxyFor(context.app);
      if (!proxy) return;
      const urls = await proxy.status(context.app.name).then(
        (status) => status.urls,
        () => [],
      );
      if (urls.length > 0)
        context.output.step(`${context.app.name} ${context.release.id} serves ${urls.join(" ")}`);
    });
    this.#unsubscribe = this.platform.events.subscribe((event) => {
      this.#log(
        `${event.time} ${event.type}${event.app ? ` ${event.app}` : ""}${event.data ? ` ${JSON.stringify(event.data)}` : ""}`,
      );
    });
  }

  /** Stops serving the API and the composition's servers; apps and their routes keep running. */
  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.platform.cron.stop();
    await Promise.all(
      this.#servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
    await rm(this.config.api.socket, { force: true });
    try {
      await this.#composition.stop?.();
    } catch (error) {
      this.#log(`while stopping: ${describeError(error)}`);
    }
    await this.platform.events.flushed();
  }
}

export function startDaemon(options: DaemonOptions): Promise<BerthDaemon> {
  return BerthDaemon.start(options);
}
