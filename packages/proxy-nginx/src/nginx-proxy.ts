import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  type AppSettings,
  BerthError,
  describeError,
  type Endpoint,
  type Output,
  type Platform,
  type PortMapping,
  type Proxy,
  type ProxyStatus,
  type RouteContext,
  validateAppName,
  validateDomain,
  validatePort,
  writeFileAtomic,
} from "@berth/core";
import {
  type CertificateInfo,
  CertificateStore,
  generateSelfSignedPair,
  type InstalledCertificate,
  verifyCertificatePair,
} from "./certificates.js";
import {
  emergencySince,
  fileSize,
  isAlive,
  parseNginxError,
  readMasterPid,
  runProgram,
  waitForExit,
  waitForGeneration,
  waitForStopAccepting,
  workerPids,
} from "./nginx-process.js";
import {
  type ConfigModel,
  type ControlListen,
  type Listener,
  renderGeneration,
  type ServerModel,
  type UpstreamModel,
  type VirtualHostModel,
} from "./render.js";
import { parseProxySettings } from "./settings.js";

export interface NginxProxyOptions {
  /** Port of the plain-HTTP listener every app gets by default; default 80. */
  httpPort?: number;
  /** Port of the HTTPS listener apps with a certificate get; default 443. */
  httpsPort?: number;
  /** Address nginx listens on: an IPv4 address, `[ipv6]` or `*`; default `0.0.0.0`. */
  listenAddress?: string;
  /** Every app also answers on `<app>.<globalDomain>`. */
  globalDomain?: string;
  /** The nginx program; default `nginx` (looked up on PATH). */
  nginxBinary?: string;
  /** The openssl program for self-signed certificates; default `openssl`. */
  opensslBinary?: string;
  /** Where config, logs, certificates and state live; default `<platform data dir>/nginx`. */
  directory?: string;
  /**
   * `own` (default): Berth runs its own nginx master with its own prefix, started when not running.
   * `include`: Berth writes `berth.conf` into an existing nginx's include dir (included in its `http` block)
   * and runs `reloadCommand`.
   */
  mode?: "own" | "include";
  /** include mode: the directory the existing nginx includes inside `http { }`, e.g. `/etc/nginx/conf.d`. */
  includeDir?: string;
  /** include mode: how to validate the whole existing config; default `[nginx, "-t"]`. */
  testCommand?: string[];
  /** include mode: how to reload the existing nginx; default `[nginx, "-s", "reload"]`. */
  reloadCommand?: string[];
  /** include mode: the existing master's pid file, to watch old workers drain; default `/run/nginx.pid`. */
  pidFile?: string;
  /** include mode: a free 127.0.0.1 port for Berth's control server (confirms reloads); required there. */
  controlPort?: number;
  /** `worker_processes`; default `auto`. */
  workerProcesses?: number | "auto";
  /** `user` for workers when nginx runs as root; default nginx's own (`nobody`). */
  workerUser?: string;
  /** How long a reload may take to be confirmed; default 30 s. */
  reloadTimeoutMs?: number;
  /** How long `route` waits for old workers to finish in-flight requests before returning; default 15 s. */
  drainTimeoutMs?: number;
  /** `worker_shutdown_timeout`: old workers close lingering connections (WebSockets) after this; default 300. */
  workerShutdownTimeoutSeconds?: number;
  /** Called with a candidate generation's directory after rendering and before `nginx -t` (audits, tests). */
  onStaged?: (directory: string) => void | Promise<void>;
}

interface RouteEndpoint extends Endpoint {
  containerPort?: number;
}

/** What Berth remembers per routed app: the upstreams nginx sends its traffic to. */
interface RouteRecord {
  deployment: string;
  webPort: number;
  endpoints: RouteEndpoint[];
}

type Routes = Record<string, RouteRecord>;

/** A change to apply: the routes to render, and app settings / certificates that differ from what is stored. */
interface Change {
  routes: Routes;
  apps?: Map<string, AppSettings>;
  certificates?: Map<string, InstalledCertificate | null>;
  output?: Output;
}

/** One nginx master Berth drives: where its pid, control server and config are. */
interface MasterSpec {
  label: "edge" | "router";
  pidFile: string;
  control: ControlListen;
  configPath: string;
  errorLog: string;
  /**
   * After a reload, wait for old workers to finish in-flight requests (they may talk to instances about to be
   * retired), not only until they stopped accepting connections.
   */
  drain: boolean;
}

type Tier = "edge" | "router";

const SAFE_PATH = /^\/[A-Za-z0-9._/@+-]*$/;
const WORKER_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const LISTEN_ADDRESS = /^(\*|[0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9a-fA-F:.]+\])$/;

function checkedPath(path: string, what: string): string {
  const absolute = resolve(path);
  if (!SAFE_PATH.test(absolute)) {
    throw new BerthError(
      "INVALID_SETTING",
      `The ${what} ${JSON.stringify(absolute)} has characters that cannot go into an nginx config; use letters, digits and ._-/@+ only.`,
    );
  }
  return absolute;
}

function proxyFailed(message: string, details: Record<string, unknown> = {}, cause?: unknown): BerthError {
  return new BerthError("PROXY_FAILED", message, { details, ...(cause === undefined ? {} : { cause }) });
}

/**
 * Routes app domains through a real nginx, in two tiers (see render.ts): the client-facing edge and the router
 * that deploys switch. Every change renders a complete new generation of config files from typed data into its
 * own directory, has `nginx -t` check both tiers, swaps the `live` symlink to it atomically, reloads the tiers
 * whose files changed and waits until each answers the new generation and its old workers stopped (and, for the
 * router, drained). Changes are serialized within the process.
 */
export class NginxProxy implements Proxy {
  readonly name = "nginx";
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly listenAddress: string;
  readonly globalDomain: string | undefined;
  readonly mode: "own" | "include";
  readonly #options: NginxProxyOptions;
  readonly #nginx: string;
  #platform: Platform | undefined;
  #directory: string | undefined;
  #certificates: CertificateStore | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Fingerprints of what each tier's master runs now; read from `tiers.json` after a restart of this process. */
  #live: { edge?: string; router?: string } | undefined;
  #traversableChecked = false;

  constructor(options: NginxProxyOptions = {}) {
    this.#options = options;
    this.httpPort = validatePort(options.httpPort ?? 80);
    this.httpsPort = validatePort(options.httpsPort ?? 443);
    if (this.httpPort === this.httpsPort) {
      throw new BerthError("INVALID_SETTING", "httpPort and httpsPort must differ.");
    }
    const listenAddress = options.listenAddress ?? "0.0.0.0";
    if (!LISTEN_ADDRESS.test(listenAddress)) {
      throw new BerthError(
        "INVALID_SETTING",
        `Invalid listen address ${JSON.stringify(listenAddress)}: use an IPv4 address, [ipv6] or *.`,
      );
    }
    this.listenAddress = listenAddress;
    this.globalDomain = options.globalDomain === undefined ? undefined : validateDomain(options.globalDomain);
    this.mode = options.mode ?? "own";
    this.#nginx = options.nginxBinary ?? "nginx";
    if (options.workerUser !== undefined && !WORKER_USER.test(options.workerUser)) {
      throw new BerthError("INVALID_SETTING", `Invalid worker user ${JSON.stringify(options.workerUser)}.`);
    }
    if (options.workerProcesses !== undefined && options.workerProcesses !== "auto") {
      if (
        !Number.isInteger(options.workerProcesses) ||
        options.workerProcesses < 1 ||
        options.workerProcesses > 256
      ) {
        throw new BerthError("INVALID_SETTING", "workerProcesses must be auto or 1 to 256.");
      }
    }
    if (this.mode === "include") {
      if (!options.includeDir) {
        throw new BerthError(
          "INVALID_SETTING",
          "include mode needs includeDir (the existing nginx's include dir).",
        );
      }
      checkedPath(options.includeDir, "include dir");
      if (options.controlPort === undefined) {
        throw new BerthError("INVALID_SETTING", "include mode needs controlPort, a free port on 127.0.0.1.");
      }
      validatePort(options.controlPort);
    }
  }

  /** Binds the proxy to a platform (done by the plugin's `apply`). */
  attach(platform: Platform): void {
    this.#platform = platform;
    this.#directory = checkedPath(
      this.#options.directory ?? join(platform.dataDir, "nginx"),
      "nginx directory",
    );
    this.#certificates = new CertificateStore(join(this.#directory, "certs"));
    // Unix socket paths are limited to about 108 bytes; the router's control socket is the longest fixed one.
    if (Buffer.byteLength(this.#routerControlSocket()) > 100) {
      throw new BerthError(
        "INVALID_SETTING",
        `The nginx directory ${this.#directory} is too long for unix socket paths; pick a shorter one (directory option).`,
      );
    }
  }

  get directory(): string {
    if (!this.#directory)
      throw new BerthError("PROXY_FAILED", "The nginx proxy is not attached to a platform.");
    return this.#directory;
  }

  get #store() {
    if (!this.#platform)
      throw new BerthError("PROXY_FAILED", "The nginx proxy is not attached to a platform.");
    return this.#platform.store;
  }

  get #certs(): CertificateStore {
    if (!this.#certificates)
      throw new BerthError("PROXY_FAILED", "The nginx proxy is not attached to a platform.");
    return this.#certificates;
  }

  /** The directory of the generation nginx serves now (the target of the `live` symlink). */
  get liveDirectory(): string {
    return join(this.directory, "live");
  }

  get pidFile(): string {
    return this.mode === "own"
      ? join(this.directory, "run", "nginx.pid")
      : (this.#options.pidFile ?? "/run/nginx.pid");
  }

  #controlSocket(): string {
    return join(this.directory, "run", "control.sock");
  }

  #routerControlSocket(): string {
    return join(this.directory, "run", "router-control.sock");
  }

  /** The router's socket for an app's container port; hashed when the name would not fit a socket path. */
  #appSocket(app: string, containerPort: number): string {
    const plain = join(this.directory, "run", "apps", `${app}-${containerPort}.sock`);
    if (Buffer.byteLength(plain) <= 100) return plain;
    const digest = createHash("sha256").update(app).digest("hex").slice(0, 16);
    return join(this.directory, "run", "apps", `${digest}-${containerPort}.sock`);
  }

  /** The router master, always Berth's own. */
  #routerMaster(): MasterSpec {
    return {
      label: "router",
      pidFile: join(this.directory, "run", "router.pid"),
      control: { kind: "unix", path: this.#routerControlSocket() },
      configPath: join(this.liveDirectory, "router.conf"),
      errorLog: join(this.directory, "logs", "router-error.log"),
      drain: true,
    };
  }

  /** The edge master in own mode. */
  #edgeMaster(): MasterSpec {
    return {
      label: "edge",
      pidFile: this.pidFile,
      control: this.#control(),
      configPath: join(this.liveDirectory, "nginx.conf"),
      errorLog: join(this.directory, "logs", "error.log"),
      // Old edge workers only talk to router sockets, which outlive them: no need to wait for them.
      drain: false,
    };
  }

  #control(): ControlListen {
    return this.mode === "own"
      ? { kind: "unix", path: this.#controlSocket() }
      : { kind: "tcp", port: this.#options.controlPort as number };
  }

  /** True when the app is routed by this proxy. */
  handles(app: AppSettings): boolean {
    return (app.proxy ?? this.#platform?.defaults.proxy) === this.name;
  }

  // --- Proxy interface ---

  async route(context: RouteContext): Promise<void> {
    const app = context.app;
    const endpoints: RouteEndpoint[] = context.deployment.instances.flatMap((instance) =>
      instance.processType === "web" && instance.endpoint
        ? [
            {
              host: instance.endpoint.host,
              port: instance.endpoint.port,
              ...(instance.containerPort ? { containerPort: instance.containerPort } : {}),
            },
          ]
        : [],
    );
    const webPort =
      endpoints.find((endpoint) => endpoint.containerPort)?.containerPort ??
      context.release.artifact.ports?.[0] ??
      5000;
    await this.#exclusive(async () => {
      const routes = await this.#readRoutes();
      routes[app.name] = { deployment: context.deployment.id, webPort, endpoints };
      context.output.detail(
        endpoints.length > 0
          ? `nginx: ${app.name} -> ${endpoints.map((endpoint) => `${endpoint.host}:${endpoint.port}`).join(", ")}`
          : `nginx: ${app.name} has no web instance; it answers 503`,
      );
      await this.#applyChange({ routes, apps: new Map([[app.name, app]]), output: context.output });
    });
  }

  async removeApp(app: string): Promise<void> {
    validateAppName(app);
    await this.#exclusive(async () => {
      const routes = await this.#readRoutes();
      if (routes[app]) {
        delete routes[app];
        await this.#applyChange({ routes, certificates: new Map([[app, null]]) });
      }
      await this.#certs.removeApp(app);
      for (const suffix of ["access", "error"]) {
        await rm(join(this.directory, "logs", "apps", `${app}-${suffix}.log`), { force: true });
      }
    });
  }

  async status(app: string): Promise<ProxyStatus> {
    validateAppName(app);
    const route = (await this.#readRoutes())[app];
    const settings = await this.#store.readApp(app);
    if (!route || !settings) return { routed: false, domains: [], upstreams: [], urls: [] };
    const certificate = await this.#certs.current(app);
    const host = this.#virtualHost(settings, route, certificate);
    const urls: string[] = [];
    for (const server of host.servers) {
      if (server.redirectToHttpsPort !== undefined) continue;
      const defaultPort = server.scheme === "https" ? 443 : 80;
      for (const name of host.serverNames) {
        urls.push(`${server.scheme}://${name}${server.port === defaultPort ? "" : `:${server.port}`}`);
      }
    }
    return {
      routed: true,
      domains: host.serverNames,
      upstreams: route.endpoints.map((endpoint) => ({
        processType: "web",
        host: endpoint.host,
        port: endpoint.port,
      })),
      urls,
    };
  }

  // --- lifecycle (called by the plugin's taps) ---

  /** Domains, ports or settings of a routed app changed: render its vhost again. */
  async refreshApp(app: AppSettings, output?: Output): Promise<void> {
    await this.#exclusive(async () => {
      const routes = await this.#readRoutes();
      if (!routes[app.name]) return;
      await this.#applyChange({ routes, apps: new Map([[app.name, app]]), ...(output ? { output } : {}) });
    });
  }

  /** Settings changed: reject invalid proxy settings (restoring the previous ones), then re-render. */
  async settingsChanged(app: AppSettings, previous: AppSettings): Promise<void> {
    try {
      parseProxySettings(app.plugins["proxy-nginx"]);
    } catch (error) {
      // Core stored the settings before telling plugins; put the previous ones back so nothing half-applied stays.
      const stored = await this.#store.readApp(app.name);
      if (stored) {
        const plugins = { ...stored.plugins };
        const before = previous.plugins["proxy-nginx"];
        if (before === undefined) delete plugins["proxy-nginx"];
        else plugins["proxy-nginx"] = before;
        await this.#store.writeApp({ ...stored, plugins });
      }
      throw error;
    }
    if (!this.handles(app)) {
      // The app switched to another proxy: stop routing it here.
      await this.#exclusive(async () => {
        const routes = await this.#readRoutes();
        if (!routes[app.name]) return;
        delete routes[app.name];
        await this.#applyChange({ routes });
      });
      return;
    }
    await this.refreshApp(app);
  }

  async renameApp(from: string, app: AppSettings): Promise<void> {
    await this.#exclusive(async () => {
      const routes = await this.#readRoutes();
      const route = routes[from];
      if (!route) {
        await this.#certs.renameApp(from, app.name);
        return;
      }
      const certificate = await this.#certs.current(from);
      await this.#certs.renameApp(from, app.name);
      delete routes[from];
      routes[app.name] = route;
      try {
        await this.#applyChange({ routes, apps: new Map([[app.name, app]]) });
      } catch (error) {
        if (certificate) await this.#certs.renameApp(app.name, from);
        throw error;
      }
    });
  }

  /**
   * After a crash or reboot: rebuild every route from the store and the schedulers' live status, and make sure
   * nginx runs with it.
   */
  async reconcile(output?: Output): Promise<void> {
    const platform = this.#platform;
    if (!platform) throw proxyFailed("The nginx proxy is not attached to a platform.");
    await this.#exclusive(async () => {
      const previous = await this.#readRoutes();
      const routes: Routes = {};
      for (const name of await platform.store.listApps()) {
        const app = await platform.store.readApp(name);
        if (!app || !this.handles(app)) continue;
        const state = await platform.store.readState(name);
        if (!state.deployment) continue;
        let endpoints: RouteEndpoint[] = [];
        if (!state.stopped) {
          let live: Awaited<ReturnType<ReturnType<Platform["schedulerFor"]>["status"]>>;
          try {
            live = await platform.schedulerFor(app).status(name);
          } catch (error) {
            // One app's scheduler being unavailable must not take every other app's routes down.
            output?.warn(
              `nginx: could not ask for ${name}'s instances (${describeError(error)}); keeping its routes.`,
            );
            if (previous[name]) routes[name] = previous[name];
            continue;
          }
          endpoints = live.flatMap((instance) =>
            instance.processType === "web" &&
            instance.running &&
            instance.endpoint &&
            instance.deployment === state.deployment?.id
              ? [
                  {
                    host: instance.endpoint.host,
                    port: instance.endpoint.port,
                    ...(instance.containerPort ? { containerPort: instance.containerPort } : {}),
                  },
                ]
              : [],
          );
        }
        routes[name] = {
          deployment: state.deployment.id,
          webPort:
            endpoints.find((endpoint) => endpoint.containerPort)?.containerPort ??
            previous[name]?.webPort ??
            5000,
          endpoints,
        };
        output?.detail(`nginx: ${name} -> ${endpoints.length} web instance(s)`);
      }
      await this.#applyChange({ routes, ...(output ? { output } : {}) });
    });
  }

  /** Starts nginx with the current routes when it is not running (own mode); renders a first config if needed. */
  async start(): Promise<void> {
    await this.#exclusive(async () => {
      await this.#applyChange({ routes: await this.#readRoutes() });
    });
  }

  /** Stops Berth's nginx masters gracefully: the edge (own mode) and the router. */
  async stop(timeoutMs = 15_000): Promise<void> {
    await this.#exclusive(async () => {
      const pidFiles = [this.#routerMaster().pidFile, ...(this.mode === "own" ? [this.pidFile] : [])];
      for (const pidFile of pidFiles) {
        const pid = await readMasterPid(pidFile);
        if (pid === undefined) continue;
        process.kill(pid, "SIGQUIT");
        if (!(await waitForExit([pid], Date.now() + timeoutMs))) {
          process.kill(pid, "SIGTERM");
          await waitForExit([pid], Date.now() + 5_000);
        }
      }
      this.#live = {};
    });
  }

  // --- certificates ---

  readonly certs = {
    /** Installs a PEM certificate (leaf first, then chain) and its key after checking they match and are valid. */
    add: (app: string, pair: { certificate: string; key: string }): Promise<CertificateInfo> =>
      this.#withAppLock(app, "certs", async (settings) => {
        const verified = verifyCertificatePair(app, pair.certificate, pair.key);
        return this.#installCertificate(settings, verified);
      }),

    /** Removes the app's certificate; HTTPS stops and HTTP serves again. */
    remove: (app: string): Promise<void> =>
      this.#withAppLock(app, "certs", async (settings) => {
        const current = await this.#certs.current(app);
        if (!current) {
          throw new BerthError("CERTIFICATE_NOT_FOUND", `App ${app} has no certificate.`, {
            details: { app },
          });
        }
        await this.#exclusive(async () => {
          const routes = await this.#readRoutes();
          if (routes[app]) {
            await this.#applyChange({
              routes,
              apps: new Map([[app, settings]]),
              certificates: new Map([[app, null]]),
            });
          }
          await this.#certs.removeApp(app);
        });
      }),

    /** Creates and installs a self-signed certificate for the app's domains (testing only). */
    generateSelfSigned: (
      app: string,
      options: { domains?: string[]; days?: number } = {},
    ): Promise<CertificateInfo> =>
      this.#withAppLock(app, "certs", async (settings) => {
        const domains = options.domains ?? this.#serverNames(settings);
        const pair = await generateSelfSignedPair(domains, {
          ...(options.days === undefined ? {} : { days: options.days }),
          ...(this.#options.opensslBinary ? { opensslBinary: this.#options.opensslBinary } : {}),
        });
        return this.#installCertificate(settings, verifyCertificatePair(app, pair.certificate, pair.key));
      }),

    /** The installed certificate, if any. */
    get: async (app: string): Promise<CertificateInfo | undefined> => {
      validateAppName(app);
      return (await this.#certs.current(app))?.info;
    },
  };

  async #installCertificate(
    settings: AppSettings,
    verified: { certificate: string; key: string; info: CertificateInfo },
  ): Promise<CertificateInfo> {
    const app = settings.name;
    return this.#exclusive(async () => {
      const staged = await this.#certs.stage(app, verified.certificate, verified.key, verified.info);
      try {
        const routes = await this.#readRoutes();
        if (routes[app]) {
          await this.#applyChange({
            routes,
            apps: new Map([[app, settings]]),
            certificates: new Map([[app, staged]]),
          });
        }
      } catch (error) {
        await this.#certs.discard(app, verified.info.fingerprint);
        throw error;
      }
      await this.#certs.commit(app, staged);
      return verified.info;
    });
  }

  async #withAppLock<T>(
    app: string,
    operation: string,
    work: (settings: AppSettings) => Promise<T>,
  ): Promise<T> {
    validateAppName(app);
    const platform = this.#platform;
    if (!platform) throw proxyFailed("The nginx proxy is not attached to a platform.");
    await platform.apps.get(app);
    return platform.locks.withLock(app, { operation }, async () => work(await platform.apps.get(app)));
  }

  // --- rendering ---

  #serverNames(app: AppSettings): string[] {
    const names = app.domains.map((domain) => {
      try {
        return validateDomain(domain);
      } catch (error) {
        throw proxyFailed(
          `App ${app.name} has an invalid domain ${JSON.stringify(domain)}; remove it.`,
          {
            app: app.name,
          },
          error,
        );
      }
    });
    if (this.globalDomain) names.push(`${app.name}.${this.globalDomain}`);
    return [...new Set(names)];
  }

  #virtualHost(
    app: AppSettings,
    route: RouteRecord,
    certificate: InstalledCertificate | undefined,
  ): VirtualHostModel {
    let settings: ReturnType<typeof parseProxySettings>;
    try {
      settings = parseProxySettings(app.plugins["proxy-nginx"]);
    } catch (error) {
      throw proxyFailed(`App ${app.name}: ${describeError(error)}`, { app: app.name }, error);
    }
    const serverNames = this.#serverNames(app);
    const mappings: PortMapping[] =
      app.ports.length > 0
        ? [...app.ports]
        : [{ scheme: "http", hostPort: this.httpPort, containerPort: route.webPort }];
    if (certificate && !mappings.some((mapping) => mapping.scheme === "https")) {
      const plain = mappings.find((mapping) => mapping.scheme === "http");
      if (plain)
        mappings.push({ scheme: "https", hostPort: this.httpsPort, containerPort: plain.containerPort });
    }
    const httpsPort = certificate
      ? mappings.find((mapping) => mapping.scheme === "https")?.hostPort
      : undefined;
    const servers: ServerModel[] = [];
    const seen = new Set<string>();
    for (const mapping of mappings) {
      // Without a certificate an https mapping cannot be served; it waits for `certs add`.
      if (mapping.scheme === "https" && !certificate) continue;
      const key = `${mapping.scheme}:${mapping.hostPort}`;
      if (seen.has(key)) continue;
      seen.add(key);
      servers.push({
        scheme: mapping.scheme,
        port: validatePort(mapping.hostPort),
        containerPort: validatePort(mapping.containerPort),
        ...(mapping.scheme === "http" && httpsPort !== undefined ? { redirectToHttpsPort: httpsPort } : {}),
      });
    }
    const upstreams: UpstreamModel[] = [];
    for (const containerPort of new Set(servers.map((server) => server.containerPort))) {
      upstreams.push({
        containerPort,
        endpoints: route.endpoints
          .filter(
            (endpoint) => endpoint.containerPort === undefined || endpoint.containerPort === containerPort,
          )
          .map((endpoint) => ({ host: endpoint.host, port: validatePort(endpoint.port) })),
        socket: this.#appSocket(app.name, containerPort),
      });
    }
    return {
      app: validateAppName(app.name),
      serverNames,
      servers,
      upstreams,
      settings,
      ...(certificate
        ? { certificate: { certificatePath: certificate.certificatePath, keyPath: certificate.keyPath } }
        : {}),
    };
  }

  async #model(change: Change, generation: string, generationDir: string): Promise<ConfigModel> {
    const hosts: VirtualHostModel[] = [];
    const listeners = new Map<number, { scheme: Listener["scheme"]; app: string }>();
    listeners.set(this.httpPort, { scheme: "http", app: "" });
    for (const name of Object.keys(change.routes).sort()) {
      const route = change.routes[name]!;
      const app = change.apps?.get(name) ?? (await this.#store.readApp(name));
      if (!app) {
        change.output?.warn(`nginx: ${name} is no longer stored; dropping its routes.`);
        delete change.routes[name];
        continue;
      }
      const certificate = change.certificates?.has(name)
        ? (change.certificates.get(name) ?? undefined)
        : await this.#certs.current(name);
      const host = this.#virtualHost(app, route, certificate);
      for (const server of host.servers) {
        const taken = listeners.get(server.port);
        if (taken && taken.scheme !== server.scheme) {
          throw proxyFailed(
            `App ${name} wants port ${server.port} for ${server.scheme}, but ${taken.app || "the default HTTP listener"} uses it for ${taken.scheme}; change its port mappings.`,
            { app: name, port: server.port },
          );
        }
        if (!taken) listeners.set(server.port, { scheme: server.scheme, app: name });
      }
      hosts.push(host);
    }
    return {
      generation,
      prefix: this.directory,
      generationDir,
      listenAddress: this.listenAddress,
      control: this.#control(),
      routerControl: this.#routerControlSocket(),
      defaultServer: this.mode === "own",
      workerProcesses: this.#options.workerProcesses ?? "auto",
      workerUser: this.#options.workerUser,
      workerShutdownTimeoutSeconds: this.#options.workerShutdownTimeoutSeconds ?? 300,
      defaultListeners: [...listeners.entries()]
        .sort(([left], [right]) => left - right)
        .map(([port, { scheme }]) => ({ port, scheme })),
      hosts,
    };
  }

  // --- generations ---

  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #readRoutes(): Promise<Routes> {
    try {
      return JSON.parse(await readFile(join(this.directory, "routes.json"), "utf8")) as Routes;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw proxyFailed(`${join(this.directory, "routes.json")} is unreadable; run reconcile.`, {}, error);
    }
  }

  async #liveGeneration(): Promise<string | undefined> {
    try {
      const target = await readlink(this.liveDirectory);
      return target.split("/").pop();
    } catch {
      return undefined;
    }
  }

  async #nextGeneration(): Promise<string> {
    let highest = 0;
    try {
      for (const entry of await readdir(join(this.directory, "generations"))) {
        const number = /^g([0-9]+)$/.exec(entry)?.[1];
        if (number) highest = Math.max(highest, Number(number));
      }
    } catch {
      // No generation yet.
    }
    return `g${highest + 1}`;
  }

  async #prepareDirectories(): Promise<void> {
    const root = this.directory;
    await mkdir(root, { recursive: true, mode: 0o755 });
    for (const sub of ["generations", "run/apps", "logs/apps", "temp", "certs"]) {
      await mkdir(join(root, sub), { recursive: true, mode: sub === "certs" ? 0o700 : 0o755 });
    }
    await this.#checkTraversable(root);
  }

  /**
   * nginx workers run as an unprivileged user when the master is root: they must be able to reach the router's
   * sockets and the temp dirs under the nginx directory. A private parent (a 0700 temp dir) would make every
   * request fail with 502 later; say so now.
   */
  async #checkTraversable(directory: string): Promise<void> {
    if (process.getuid?.() !== 0 || this.#options.workerUser === "root" || this.#traversableChecked) return;
    let current = directory;
    while (current !== "/") {
      const info = await stat(current);
      if ((info.mode & 0o001) === 0) {
        throw new BerthError(
          "INVALID_SETTING",
          `nginx workers cannot reach ${directory}: ${current} is not searchable by other users. Run chmod o+x ${current}, or choose another nginx directory.`,
          { details: { directory: current } },
        );
      }
      current = dirname(current);
    }
    this.#traversableChecked = true;
  }

  /**
   * Render → `nginx -t` (both tiers) → swap → reload the tiers whose files changed (router first, so new
   * sockets exist before the edge uses them; edge first when apps go away) → confirm. When any step before the
   * swap fails, nothing live changed; when a reload is not confirmed, the previous generation comes back.
   */
  async #applyChange(change: Change): Promise<void> {
    await this.#prepareDirectories();
    const generation = await this.#nextGeneration();
    const generationDir = join(this.directory, "generations", generation);
    const previousRoutes = await this.#readRoutes();
    // Rendered once with a placeholder generation, so unchanged tiers are recognised and left alone.
    const placeholder = "g0";
    const template = renderGeneration(
      await this.#model(change, placeholder, join(this.directory, "generations", placeholder)),
    );
    const fingerprint = (files: Map<string, string>) =>
      createHash("sha256")
        .update(JSON.stringify([...files.entries()].sort()))
        .digest("hex");
    const fingerprints = { edge: fingerprint(template.edge), router: fingerprint(template.router) };
    const files = renderGeneration(await this.#model(change, generation, generationDir));
    await mkdir(join(generationDir, "apps"), { recursive: true });
    await mkdir(join(generationDir, "router"), { recursive: true });
    try {
      for (const [relative, text] of [...files.edge, ...files.router]) {
        await writeFile(join(generationDir, relative), text, { mode: 0o644 });
      }
      await this.#options.onStaged?.(generationDir);
      await this.#test(generationDir, "router.conf");
      await this.#test(generationDir, "nginx.conf");
    } catch (error) {
      await rm(generationDir, { recursive: true, force: true });
      throw error;
    }
    const live = await this.#liveFingerprints();
    const tiers: Tier[] = [];
    if (
      fingerprints.router !== live.router ||
      (await readMasterPid(this.#routerMaster().pidFile)) === undefined
    ) {
      tiers.push("router");
    }
    if (
      fingerprints.edge !== live.edge ||
      (this.mode === "own" && (await readMasterPid(this.pidFile)) === undefined)
    ) {
      const removesApps = Object.keys(previousRoutes).some((name) => !(name in change.routes));
      if (removesApps) tiers.unshift("edge");
      else tiers.push("edge");
    }
    const previous = await this.#liveGeneration();
    const before = { ...live };
    await this.#swap(generation);
    const activated: Tier[] = [];
    try {
      for (const tier of tiers) {
        activated.push(tier);
        await this.#activate(tier, generation, change.output);
        live[tier] = fingerprints[tier];
      }
    } catch (error) {
      this.#live = before;
      if (previous) {
        await this.#swap(previous);
        for (const tier of activated) {
          await this.#activate(tier, previous, change.output).catch((rollbackError: unknown) => {
            change.output?.warn(
              `nginx: could not return the ${tier} to ${previous}: ${describeError(rollbackError)}`,
            );
          });
        }
      }
      await rm(generationDir, { recursive: true, force: true });
      throw error;
    }
    await writeFileAtomic(join(this.directory, "routes.json"), `${JSON.stringify(change.routes, null, 2)}\n`);
    // Remembered across restarts of this process, so its first deploy does not reload the edge needlessly.
    await writeFileAtomic(join(this.directory, "tiers.json"), `${JSON.stringify(live)}\n`);
    await this.#prune(generation, previous);
  }

  async #liveFingerprints(): Promise<{ edge?: string; router?: string }> {
    if (!this.#live) {
      const text = await readFile(join(this.directory, "tiers.json"), "utf8").catch(() => "{}");
      try {
        const parsed = JSON.parse(text) as { edge?: unknown; router?: unknown };
        this.#live = {
          ...(typeof parsed.edge === "string" ? { edge: parsed.edge } : {}),
          ...(typeof parsed.router === "string" ? { router: parsed.router } : {}),
        };
      } catch {
        this.#live = {};
      }
    }
    return this.#live;
  }

  async #test(generationDir: string, config: "nginx.conf" | "router.conf"): Promise<void> {
    const result = await runProgram([
      this.#nginx,
      "-t",
      "-q",
      "-p",
      `${this.directory}/`,
      "-c",
      join(generationDir, config),
    ]);
    if (result.exitCode === 0) return;
    const failure = parseNginxError(result.output);
    const file = failure.file?.startsWith(generationDir)
      ? failure.file.slice(generationDir.length + 1)
      : failure.file;
    const app = file ? /^(?:apps|router)\/([a-z][a-z0-9-]*)\.conf$/.exec(file)?.[1] : undefined;
    const where = file ? ` (${file} line ${failure.line})` : "";
    throw proxyFailed(
      app
        ? `nginx rejected the config of app ${app}: ${failure.message}${where}. The live config is unchanged.`
        : `nginx rejected the config: ${failure.message}${where}. The live config is unchanged.`,
      {
        ...(app ? { app } : {}),
        ...(file ? { file, line: failure.line } : {}),
        output: result.output.trim(),
      },
    );
  }

  async #swap(generation: string): Promise<void> {
    const next = join(this.directory, `live.${randomBytes(4).toString("hex")}`);
    await symlink(join("generations", generation), next);
    // rename(2) over the old symlink: readers see the old or the new generation, never none.
    await rename(next, this.liveDirectory);
  }

  async #activate(tier: Tier, generation: string, output: Output | undefined): Promise<void> {
    if (tier === "edge" && this.mode === "include") {
      await this.#activateIncluded(generation);
      return;
    }
    const master = tier === "edge" ? this.#edgeMaster() : this.#routerMaster();
    const pid = await readMasterPid(master.pidFile);
    if (pid === undefined) {
      await this.#startMaster(master, generation, output);
      return;
    }
    const oldWorkers = await workerPids(pid);
    const logOffset = await fileSize(master.errorLog);
    process.kill(pid, "SIGHUP");
    await this.#confirm(master, generation, oldWorkers, output, logOffset);
  }

  async #activateIncluded(generation: string): Promise<void> {
    const includeFile = join(checkedPath(this.#options.includeDir as string, "include dir"), "berth.conf");
    const text = `# Written by @berth/proxy-nginx: routes of Berth apps.\ninclude ${join(this.liveDirectory, "http.conf")};\n`;
    const existing = await readFile(includeFile, "utf8").catch(() => undefined);
    if (existing !== text) await writeFileAtomic(includeFile, text);
    const test = await runProgram(this.#options.testCommand ?? [this.#nginx, "-t"]);
    if (test.exitCode !== 0) {
      const failure = parseNginxError(test.output);
      throw proxyFailed(`The existing nginx rejected its config with Berth's routes: ${failure.message}.`, {
        output: test.output.trim(),
      });
    }
    const masterPid = await readMasterPid(this.pidFile);
    const oldWorkers = masterPid === undefined ? [] : await workerPids(masterPid);
    const reload = await runProgram(this.#options.reloadCommand ?? [this.#nginx, "-s", "reload"]);
    if (reload.exitCode !== 0) {
      throw proxyFailed(`Reloading the existing nginx failed: ${reload.output.trim()}`, {
        output: reload.output,
      });
    }
    const edge: MasterSpec = {
      label: "edge",
      pidFile: this.pidFile,
      control: this.#control(),
      configPath: includeFile,
      errorLog: "",
      drain: false,
    };
    await this.#confirm(edge, generation, oldWorkers, undefined);
  }

  async #startMaster(master: MasterSpec, generation: string, output: Output | undefined): Promise<void> {
    // A master that died without cleaning up leaves its pid file and unix sockets; both would break a start.
    await rm(master.pidFile, { force: true });
    if (master.control.kind === "unix") await rm(master.control.path, { force: true });
    if (master.label === "router") {
      const sockets = join(this.directory, "run", "apps");
      for (const entry of await readdir(sockets).catch(() => [] as string[])) {
        if (entry.endsWith(".sock")) await rm(join(sockets, entry), { force: true });
      }
    }
    output?.detail(`nginx: starting the ${master.label} master process`);
    const result = await runProgram([this.#nginx, "-p", `${this.directory}/`, "-c", master.configPath]);
    if (result.exitCode !== 0) {
      throw proxyFailed(`nginx (${master.label}) did not start: ${parseNginxError(result.output).message}`, {
        output: result.output.trim(),
      });
    }
    await this.#confirm(master, generation, [], output);
  }

  /** Waits until the control server answers the new generation, then until old workers finished their requests. */
  async #confirm(
    master: MasterSpec,
    generation: string,
    oldWorkers: number[],
    output: Output | undefined,
    /** Where the master's error log ended before the reload; what it appends after tells why a reload failed. */
    logOffset?: number,
  ): Promise<void> {
    const timeoutMs = this.#options.reloadTimeoutMs ?? 30_000;
    const switched = await waitForGeneration(master.control, generation, Date.now() + timeoutMs, async () =>
      master.errorLog && logOffset !== undefined ? emergencySince(master.errorLog, logOffset) : undefined,
    );
    if (switched !== true) {
      const reason = switched.failure ?? (await errorLogTail(master.errorLog));
      throw proxyFailed(
        switched.failure
          ? `nginx (${master.label}) could not apply the new config: ${switched.failure}. The previous config is restored.`
          : `nginx (${master.label}) did not switch to the new config within ${timeoutMs / 1000}s${reason ? `: ${reason}` : ""}. The previous config is restored.`,
        { generation, ...(reason ? { reason } : {}) },
      );
    }
    if (oldWorkers.length === 0) return;
    // The master starts new workers and only then tells the old ones to quit: until they did, a new connection
    // may still land on the old config.
    const drainDeadline = Date.now() + (this.#options.drainTimeoutMs ?? 15_000);
    if (!(await waitForStopAccepting(oldWorkers, drainDeadline))) {
      throw proxyFailed(
        `nginx (${master.label}) old workers did not stop accepting connections after the reload.`,
        {
          generation,
        },
      );
    }
    if (master.drain && !(await waitForExit(oldWorkers, drainDeadline))) {
      const lingering = oldWorkers.filter(isAlive);
      output?.warn(
        `nginx: ${lingering.length} old ${master.label} worker(s) still finish long requests (WebSockets?); they stop within worker_shutdown_timeout.`,
      );
    }
  }

  async #prune(current: string, previous: string | undefined): Promise<void> {
    const keep = new Set([current, previous]);
    const root = join(this.directory, "generations");
    for (const entry of await readdir(root)) {
      if (!keep.has(entry)) await rm(join(root, entry), { recursive: true, force: true });
    }
    for (const entry of await readdir(this.directory)) {
      // Leftover `live.*` links from a crash between symlink and rename.
      if (/^live\.[0-9a-f]{8}$/.test(entry)) await rm(join(this.directory, entry), { force: true });
    }
  }
}

async function errorLogTail(path: string): Promise<string> {
  if (!path) return "";
  const text = await readFile(path, "utf8").catch(() => "");
  const lines = text
    .trim()
    .split("\n")
    .filter((line) => /\[(emerg|alert|crit)\]/.test(line));
  return lines.slice(-2).join(" / ");
}
