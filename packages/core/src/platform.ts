import { homedir } from "node:os";
import { join } from "node:path";
import { CronJobs } from "./cron-jobs.js";
import { BerthError, describeError } from "./errors.js";
import { EventLog } from "./events.js";
import { type CheckDefaults, runHealthChecks } from "./health-checks.js";
import { type BerthHooks, createHooks } from "./hooks.js";
import { AppLocks, type LockHolder } from "./lock.js";
import type {
  AppSettings,
  AppState,
  Artifact,
  InstanceStatus,
  JsonValue,
  PortMapping,
  Release,
  Source,
} from "./model.js";
import { Output } from "./output.js";
import { Pipeline, type PipelineRun, releaseEnvironment, resolveFormation } from "./pipeline.js";
import type {
  BerthPlugin,
  Builder,
  LogLine,
  LogsOptions,
  Proxy,
  RunOptions,
  RunResult,
  Scheduler,
} from "./plugin.js";
import { FileStore, type Store } from "./store.js";
import {
  parseReleaseId,
  validateAppName,
  validateBranchName,
  validateConfigKey,
  validateConfigVars,
  validateDomain,
  validatePort,
  validateScale,
} from "./validation.js";

export interface PlatformOptions {
  /** Where state lives; default `BERTH_DATA`, else `/var/lib/berth` for root and `~/.berth` otherwise. */
  dataDir?: string;
  /** A custom store; default a `FileStore` under the data dir. */
  store?: Store;
  /** Plugin names used when an app selects none. */
  defaults?: { builder?: string; scheduler?: string; proxy?: string };
  /** How long a mutating operation waits for another one on the same app; default 10 minutes. */
  lockTimeoutMs?: number;
  /** Succeeded releases whose artifacts are kept for rollback; default 5. */
  keepReleases?: number;
  /** Default health checks when app.json has none. */
  checks?: Partial<CheckDefaults>;
}

/** Per-call options of every operation that may take a while. */
export interface OperationOptions {
  /** Progress, Heroku style; default: discarded. */
  output?: Output;
  signal?: AbortSignal;
}

export interface ConfigChangeOptions extends OperationOptions {
  /** Restart the app with the new config (a new release); default true. */
  restart?: boolean;
}

function defaultDataDir(): string {
  if (process.env.BERTH_DATA) return process.env.BERTH_DATA;
  return process.getuid?.() === 0 ? "/var/lib/berth" : join(homedir(), ".berth");
}

/** The settings of a newly created app: no domains, ports or scale of its own, checks on, no plugin settings. */
export function defaultAppSettings(name: string): AppSettings {
  return {
    name,
    createdAt: new Date().toISOString(),
    domains: [],
    ports: [],
    scale: {},
    checks: { disabled: [], skipped: [] },
    plugins: {},
  };
}

const PORT_MAPPING = /^(https?):([0-9]{1,5}):([0-9]{1,5})$/;

export function parsePortMapping(text: string): PortMapping {
  const match = PORT_MAPPING.exec(text);
  if (!match) {
    throw new BerthError(
      "INVALID_PORT_MAPPING",
      `Invalid port mapping ${JSON.stringify(text)}: use scheme:host-port:container-port, e.g. http:80:5000.`,
      {
        details: { value: text },
      },
    );
  }
  return {
    scheme: match[1] as PortMapping["scheme"],
    hostPort: validatePort(Number(match[2])),
    containerPort: validatePort(Number(match[3])),
  };
}

export function formatPortMapping(mapping: PortMapping): string {
  return `${mapping.scheme}:${mapping.hostPort}:${mapping.containerPort}`;
}

/**
 * A Berth platform: hooks for plugins to tap, and the operations an embedder or a CLI calls. Every mutating
 * operation validates its input first and then runs under the app's lock.
 */
export class Platform {
  readonly hooks: BerthHooks = createHooks();
  readonly dataDir: string;
  readonly store: Store;
  readonly locks: AppLocks;
  readonly events: EventLog;
  readonly defaults: { builder?: string; scheduler: string; proxy?: string };
  readonly keepReleases: number;
  readonly builders = new Map<string, Builder>();
  readonly schedulers = new Map<string, Scheduler>();
  readonly proxies = new Map<string, Proxy>();
  readonly plugins: BerthPlugin[] = [];
  /** app.json cron entries: list, run now, and the minute ticker the daemon starts. */
  readonly cron: CronJobs = new CronJobs(this);
  readonly #pipeline: Pipeline;
  readonly #lockTimeoutMs: number;

  constructor(options: PlatformOptions = {}) {
    this.dataDir = options.dataDir ?? defaultDataDir();
    this.store = options.store ?? new FileStore(this.dataDir);
    this.locks = new AppLocks(this.dataDir);
    this.events = new EventLog(join(this.dataDir, "events.jsonl"));
    this.defaults = { scheduler: "docker", ...options.defaults };
    this.keepReleases = options.keepReleases ?? 5;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 600_000;
    this.#pipeline = new Pipeline(this);
    const checkDefaults: CheckDefaults = { uptime: 2, webTimeout: 30, ...options.checks };
    this.hooks.checkDeploy.tapPromise({ name: "core:health-checks", stage: -100 }, (context) =>
      runHealthChecks(context, this.scheduler(context.deployment.scheduler), checkDefaults),
    );
  }

  /** Applies a plugin; plugins tap hooks and register builders, schedulers or proxies under their names. */
  use(plugin: BerthPlugin): this {
    if (this.plugins.some((applied) => applied.name === plugin.name)) {
      throw new BerthError("PLUGIN_CONFLICT", `A plugin named ${plugin.name} is already applied.`);
    }
    plugin.apply(this);
    this.plugins.push(plugin);
    return this;
  }

  registerBuilder(builder: Builder): void {
    this.#register(this.builders, builder, "builder");
  }

  registerScheduler(scheduler: Scheduler): void {
    this.#register(this.schedulers, scheduler, "scheduler");
  }

  registerProxy(proxy: Proxy): void {
    this.#register(this.proxies, proxy, "proxy");
  }

  #register<T extends { name: string }>(registry: Map<string, T>, entry: T, kind: string): void {
    if (registry.has(entry.name))
      throw new BerthError("PLUGIN_CONFLICT", `A ${kind} named ${entry.name} is already registered.`);
    registry.set(entry.name, entry);
  }

  scheduler(name: string): Scheduler {
    const scheduler = this.schedulers.get(name);
    if (!scheduler) {
      throw new BerthError(
        "PLUGIN_NOT_FOUND",
        `Scheduler ${name} is not installed (installed: ${[...this.schedulers.keys()].join(", ") || "none"}).`,
      );
    }
    return scheduler;
  }

  proxy(name: string): Proxy {
    const proxy = this.proxies.get(name);
    if (!proxy) {
      throw new BerthError(
        "PLUGIN_NOT_FOUND",
        `Proxy ${name} is not installed (installed: ${[...this.proxies.keys()].join(", ") || "none"}).`,
      );
    }
    return proxy;
  }

  /** The scheduler an app runs on. */
  schedulerFor(app: AppSettings): Scheduler {
    return this.scheduler(app.scheduler ?? this.defaults.scheduler);
  }

  /** The proxy an app is routed by, if any. */
  proxyFor(app: AppSettings): Proxy | undefined {
    const name = app.proxy ?? this.defaults.proxy;
    return name ? this.proxy(name) : undefined;
  }

  // --- pipeline entry points ---

  /** Build `source` and roll it out: the full pipeline, under the app's lock. */
  async deploy(app: string, source: Source, options: OperationOptions = {}): Promise<Release> {
    validateAppName(app);
    return this.#mutate(app, "deploy", options, (settings, run) =>
      this.#pipeline.deploySource(settings, source, run),
    );
  }

  /** Redeploy an earlier release's artifact with its config snapshot, as a new release. */
  async rollback(app: string, releaseId: string, options: OperationOptions = {}): Promise<Release> {
    validateAppName(app);
    const version = parseReleaseId(releaseId);
    return this.#mutate(app, "rollback", options, async (settings, run) => {
      const target = await this.store.readRelease(app, version);
      if (!target)
        throw new BerthError(
          "RELEASE_NOT_FOUND",
          `Release v${version} of ${app} does not exist; see releases ${app}.`,
        );
      if (target.status !== "succeeded") {
        throw new BerthError(
          "RELEASE_NOT_FOUND",
          `Release v${version} of ${app} never deployed successfully; pick another.`,
        );
      }
      const kept = (await this.store.listReleases(app))
        .filter((release) => release.status === "succeeded")
        .slice(-this.keepReleases)
        .some((release) => release.artifact.image === target.artifact.image);
      if (!kept) {
        throw new BerthError(
          "RELEASE_PRUNED",
          `The artifact of v${version} was pruned (only the last ${this.keepReleases} are kept); redeploy its source instead.`,
        );
      }
      run.output.step(`Rolling back ${app} to v${version}`);
      const release = await this.#pipeline.createRelease(
        settings,
        {
          description: `Rollback to v${version}`,
          source: {
            kind: "rollback",
            from: target.id,
            ...(target.source.rev ? { rev: target.source.rev } : {}),
          },
          artifact: target.artifact,
          config: target.config,
          processTypes: target.processTypes,
          appJson: target.appJson,
        },
        run,
      );
      const deployed = await this.#pipeline.rollout(settings, release, run);
      await this.store.writeEnv(app, target.config);
      this.events.emit("config.changed", app, { rollback: target.id });
      return deployed;
    });
  }

  /** Release an artifact that needs no build (e.g. an existing local image), through the same checks. */
  async deployArtifact(
    app: string,
    artifact: Artifact,
    options: OperationOptions & { description?: string } = {},
  ): Promise<Release> {
    validateAppName(app);
    if (
      typeof artifact?.image !== "string" ||
      artifact.image === "" ||
      typeof artifact.builder !== "string"
    ) {
      throw new BerthError("INVALID_SOURCE", "An artifact needs a builder name and an image.");
    }
    return this.#mutate(app, "deploy", options, (settings, run) =>
      this.#pipeline.deployArtifact(
        settings,
        artifact,
        run,
        options.description ?? `Deploy image ${artifact.image}`,
      ),
    );
  }

  /** Restart every process of the current release through the transactional path. */
  async restart(app: string, options: OperationOptions = {}): Promise<Release> {
    validateAppName(app);
    return this.#mutate(app, "restart", options, async (settings, run) => {
      const current = await this.#requireCurrent(app);
      run.output.step(`Restarting ${app} (${current.id})`);
      return this.#pipeline.rollout(settings, current, run);
    });
  }

  // --- apps ---

  readonly apps = {
    create: async (
      name: string,
      settings: Partial<Pick<AppSettings, "builder" | "scheduler" | "proxy" | "deployBranch">> = {},
    ) => {
      validateAppName(name);
      if (settings.deployBranch !== undefined) validateBranchName(settings.deployBranch);
      return this.locks.withLock(name, { operation: "create", timeoutMs: this.#lockTimeoutMs }, async () => {
        if (await this.store.readApp(name)) {
          throw new BerthError("APP_EXISTS", `App ${name} already exists.`, { details: { app: name } });
        }
        const app: AppSettings = { ...defaultAppSettings(name), ...settings };
        await this.store.writeApp(app);
        await this.hooks.appCreated.promise({ app });
        this.events.emit("app.created", name);
        return app;
      });
    },

    get: async (name: string): Promise<AppSettings> => {
      validateAppName(name);
      const app = await this.store.readApp(name);
      if (!app)
        throw new BerthError("APP_NOT_FOUND", `App ${name} does not exist; create it first.`, {
          details: { app: name },
        });
      return app;
    },

    exists: async (name: string): Promise<boolean> => {
      validateAppName(name);
      return (await this.store.readApp(name)) !== undefined;
    },

    list: (): Promise<string[]> => this.store.listApps(),

    state: async (name: string): Promise<AppState> => {
      await this.apps.get(name);
      return this.store.readState(name);
    },

    destroy: async (name: string, options: OperationOptions = {}) => {
      validateAppName(name);
      await this.#mutate(name, "destroy", options, async (app, run) => {
        run.output.step(`Destroying ${name}`);
        await this.hooks.appDestroyed.promise({ app, output: run.output });
        await this.store.deleteApp(name);
        this.events.emit("app.destroyed", name);
      });
    },

    rename: async (from: string, to: string, options: OperationOptions = {}) => {
      validateAppName(from);
      validateAppName(to);
      if (from === to) throw new BerthError("APP_EXISTS", `App ${to} already has that name.`);
      return this.#mutate(from, "rename", options, async (_app, run) =>
        this.locks.withLock(to, { operation: "rename", timeoutMs: this.#lockTimeoutMs }, async () => {
          await this.store.renameApp(from, to);
          const app = await this.apps.get(to);
          await this.hooks.appRenamed.promise({ from, app });
          this.events.emit("app.renamed", to, { from });
          const current = await this.#pipeline.currentRelease(to);
          const state = await this.store.readState(to);
          if (current && !state.stopped) {
            // Instances carry the app's name; replace them under the new one, transactionally.
            await this.#pipeline.rollout(app, current, run);
          }
          return app;
        }),
      );
    },

    /** Choose plugins and deploy branch for an app. */
    configure: async (
      name: string,
      changes: Partial<Pick<AppSettings, "builder" | "scheduler" | "proxy" | "deployBranch" | "checks">>,
    ) => {
      if (changes.deployBranch !== undefined) validateBranchName(changes.deployBranch);
      for (const kind of ["builder", "scheduler", "proxy"] as const) {
        const value = changes[kind];
        if (value !== undefined && !/^[a-z][a-z0-9-]{0,62}$/.test(value)) {
          throw new BerthError("INVALID_SETTING", `Invalid ${kind} name ${JSON.stringify(value)}.`);
        }
      }
      if (changes.checks) {
        for (const type of [...changes.checks.disabled, ...changes.checks.skipped]) {
          if (type !== "_all_") validateScale(type, 0);
        }
      }
      return this.#updateSettings(name, "configure", (app) => ({ ...app, ...changes }));
    },

    /** Settings owned by a plugin (`plugins[pluginName]`), merged; a `null` value removes a key. */
    setPluginSettings: async (name: string, plugin: string, values: Record<string, JsonValue>) =>
      this.#updateSettings(name, "settings", (app) => {
        const merged: Record<string, JsonValue> = { ...(app.plugins[plugin] ?? {}) };
        for (const [key, value] of Object.entries(values)) {
          if (value === null) delete merged[key];
          else merged[key] = value;
        }
        return { ...app, plugins: { ...app.plugins, [plugin]: merged } };
      }),

    /** Operators only: remove an app's lock whoever holds it. */
    unlock: async (name: string): Promise<LockHolder | undefined> => {
      validateAppName(name);
      const holder = await this.locks.forceUnlock(name);
      this.events.emit("app.unlocked", name, holder ? { holder } : undefined);
      return holder;
    },
  };

  // --- config ---

  readonly config = {
    all: async (app: string): Promise<Record<string, string>> => {
      await this.apps.get(app);
      return this.store.readEnv(app);
    },
    get: async (app: string, key: string): Promise<string | undefined> => {
      validateConfigKey(key);
      return (await this.config.all(app))[key];
    },
    set: async (app: string, vars: Record<string, string>, options: ConfigChangeOptions = {}) => {
      validateAppName(app);
      const checked = validateConfigVars(vars);
      if (Object.keys(checked).length === 0)
        throw new BerthError("INVALID_CONFIG_KEY", "Give at least one KEY=value to set.");
      return this.#changeConfig(app, options, (env) => ({ ...env, ...checked }), Object.keys(checked), []);
    },
    unset: async (app: string, keys: string[], options: ConfigChangeOptions = {}) => {
      validateAppName(app);
      for (const key of keys) validateConfigKey(key);
      if (keys.length === 0) throw new BerthError("INVALID_CONFIG_KEY", "Give at least one KEY to unset.");
      return this.#changeConfig(
        app,
        options,
        (env) => Object.fromEntries(Object.entries(env).filter(([key]) => !keys.includes(key))),
        [],
        keys,
      );
    },
  };

  async #changeConfig(
    name: string,
    options: ConfigChangeOptions,
    change: (env: Record<string, string>) => Record<string, string>,
    set: string[],
    unset: string[],
  ): Promise<Release | undefined> {
    return this.#mutate(name, "config", options, async (app, run) => {
      const env = change(await this.store.readEnv(name));
      const current = await this.#pipeline.currentRelease(name);
      const state = await this.store.readState(name);
      let release: Release | undefined;
      if (current && options.restart !== false && !state.stopped) {
        const description = [
          set.length ? `Set ${set.join(", ")}` : "",
          unset.length ? `Unset ${unset.join(", ")}` : "",
        ]
          .filter(Boolean)
          .join("; ");
        run.output.step(`${description} and restarting ${name}`);
        const created = await this.#pipeline.createReleaseWithPhase(
          app,
          {
            description,
            source: { kind: "config", ...(current.source.rev ? { rev: current.source.rev } : {}) },
            artifact: current.artifact,
            config: env,
            processTypes: current.processTypes,
            appJson: current.appJson,
          },
          run,
        );
        // The new config is stored only once the release with it serves: a failed restart changes nothing.
        release = await this.#pipeline.rollout(app, created, run);
      }
      await this.store.writeEnv(name, env);
      await this.hooks.configChanged.promise({ app, set, unset });
      this.events.emit("config.changed", name, { set, unset, ...(release ? { release: release.id } : {}) });
      return release;
    });
  }

  // --- domains and ports ---

  readonly domains = {
    list: async (app: string): Promise<string[]> => (await this.apps.get(app)).domains,
    add: (app: string, domains: string[]) =>
      this.#changeDomains(app, domains, (current, added) => [...new Set([...current, ...added])]),
    remove: (app: string, domains: string[]) =>
      this.#changeDomains(app, domains, (current, removed) =>
        current.filter((domain) => !removed.includes(domain)),
      ),
    set: (app: string, domains: string[]) =>
      this.#changeDomains(app, domains, (_current, given) => [...new Set(given)]),
    clear: (app: string) => this.#changeDomains(app, [], () => []),
  };

  async #changeDomains(
    name: string,
    given: string[],
    change: (current: string[], given: string[]) => string[],
  ) {
    validateAppName(name);
    if (!Array.isArray(given)) throw new BerthError("INVALID_DOMAIN", "Give a list of domains.");
    const checked = given.map(validateDomain);
    return this.#mutate(name, "domains", {}, async (app) => {
      const domains = change(app.domains, checked);
      for (const other of await this.store.listApps()) {
        if (other === name) continue;
        const taken = (await this.store.readApp(other))?.domains.find(
          (domain) => domains.includes(domain) && !app.domains.includes(domain),
        );
        if (taken)
          throw new BerthError(
            "INVALID_DOMAIN",
            `Domain ${taken} already belongs to app ${other}; remove it there first.`,
            { details: { domain: taken, app: other } },
          );
      }
      const updated = { ...app, domains };
      await this.store.writeApp(updated);
      await this.hooks.domainsChanged.promise({ app: updated, previous: app.domains });
      this.events.emit("domains.changed", name, { domains });
      return domains;
    });
  }

  readonly ports = {
    list: async (app: string): Promise<PortMapping[]> => (await this.apps.get(app)).ports,
    add: (app: string, mappings: string[]) =>
      this.#changePorts(app, mappings, (current, added) => dedupePorts([...current, ...added])),
    remove: (app: string, mappings: string[]) =>
      this.#changePorts(app, mappings, (current, removed) =>
        current.filter(
          (mapping) => !removed.some((gone) => formatPortMapping(gone) === formatPortMapping(mapping)),
        ),
      ),
    set: (app: string, mappings: string[]) =>
      this.#changePorts(app, mappings, (_current, given) => dedupePorts(given)),
    clear: (app: string) => this.#changePorts(app, [], () => []),
  };

  async #changePorts(
    name: string,
    given: string[],
    change: (current: PortMapping[], given: PortMapping[]) => PortMapping[],
  ) {
    validateAppName(name);
    const checked = given.map(parsePortMapping);
    return this.#mutate(name, "ports", {}, async (app) => {
      const updated = { ...app, ports: change(app.ports, checked) };
      await this.store.writeApp(updated);
      await this.hooks.portsChanged.promise({ app: updated });
      this.events.emit("ports.changed", name, { ports: updated.ports.map(formatPortMapping) });
      return updated.ports;
    });
  }

  // --- releases ---

  readonly releases = {
    list: async (app: string): Promise<Release[]> => {
      await this.apps.get(app);
      return this.store.listReleases(app);
    },
    get: async (app: string, releaseId: string): Promise<Release> => {
      await this.apps.get(app);
      const version = parseReleaseId(releaseId);
      const release = await this.store.readRelease(app, version);
      if (!release)
        throw new BerthError("RELEASE_NOT_FOUND", `Release v${version} of ${app} does not exist.`);
      return release;
    },
    current: async (app: string): Promise<Release | undefined> => {
      await this.apps.get(app);
      return this.#pipeline.currentRelease(app);
    },
  };

  // --- processes ---

  readonly ps = {
    /** Change the number of instances per process type, through the transactional path. */
    scale: async (
      name: string,
      quantities: Record<string, number | string>,
      options: OperationOptions = {},
    ) => {
      validateAppName(name);
      const checked: Record<string, number> = {};
      for (const [type, quantity] of Object.entries(quantities)) {
        if (type === "release")
          throw new BerthError(
            "INVALID_SCALE",
            "The release process type runs once per deploy and cannot be scaled.",
          );
        checked[type] = validateScale(type, quantity);
      }
      return this.#mutate(name, "scale", options, async (app, run) => {
        const current = await this.#pipeline.currentRelease(name);
        if (current) {
          for (const type of Object.keys(checked)) {
            if (!(type in current.processTypes)) {
              throw new BerthError(
                "INVALID_SCALE",
                `${current.id} of ${name} has no process type ${type} (it has ${Object.keys(current.processTypes).join(", ")}).`,
                { details: { type } },
              );
            }
          }
        }
        const updated = { ...app, scale: { ...app.scale, ...checked } };
        const state = await this.store.readState(name);
        if (current && !state.stopped) {
          const formation = resolveFormation(current, updated.scale);
          run.output.step(
            `Scaling ${name} to ${Object.entries(formation)
              .map(([type, count]) => `${type}=${count}`)
              .join(" ")}`,
          );
          await this.#pipeline.rollout(updated, current, run, formation);
        }
        await this.store.writeApp(updated);
        const formation = current ? resolveFormation(current, updated.scale) : updated.scale;
        await this.hooks.scaled.promise({ app: updated, formation });
        this.events.emit("app.scaled", name, { formation });
        return formation;
      });
    },
    status: async (name: string): Promise<InstanceStatus[]> => {
      const app = await this.apps.get(name);
      return this.schedulerFor(app).status(name);
    },
    stop: async (name: string, options: OperationOptions = {}) =>
      this.#mutate(name, "stop", options, async (app) => {
        await this.schedulerFor(app).stop(name);
        await this.store.writeState(name, { ...(await this.store.readState(name)), stopped: true });
        await this.hooks.appStopped.promise({ app });
        this.events.emit("app.stopped", name);
      }),
    start: async (name: string, options: OperationOptions = {}) =>
      this.#mutate(name, "start", options, async (app) => {
        await this.schedulerFor(app).start(name);
        await this.store.writeState(name, { ...(await this.store.readState(name)), stopped: false });
        await this.hooks.appStarted.promise({ app });
        this.events.emit("app.started", name);
      }),
    restart: (name: string, options: OperationOptions = {}) => this.restart(name, options),
  };

  /** Log lines of the app's instances. */
  async logs(name: string, options: LogsOptions, onLine: (line: LogLine) => void): Promise<void> {
    const app = await this.apps.get(name);
    if (options.processType !== undefined) validateScale(options.processType, 0);
    if (options.processType === undefined || options.processType === "cron") {
      for (const line of await this.cron.logLines(name, options.tail)) onLine(line);
      if (options.processType === "cron") return;
    }
    await this.schedulerFor(app).logs(name, options, onLine);
  }

  /** A one-off process of the current release, with its config; returns its exit code. */
  async run(name: string, command: string, options: RunOptions = {}): Promise<RunResult> {
    const app = await this.apps.get(name);
    if (typeof command !== "string" || command.trim() === "")
      throw new BerthError("INVALID_SETTING", "Give a command to run.");
    if (options.env) validateConfigVars(options.env);
    const current = await this.#requireCurrent(name);
    this.events.emit("app.run", name, { release: current.id });
    return this.schedulerFor(app).run(name, current, command, options);
  }

  /** After a crash or reboot: settle interrupted releases and let plugins rebuild live state. */
  async reconcile(options: OperationOptions = {}): Promise<void> {
    const output = options.output ?? new Output();
    for (const name of await this.store.listApps()) {
      try {
        await this.locks.withLock(
          name,
          { operation: "reconcile", timeoutMs: this.#lockTimeoutMs },
          async () => {
            const app = await this.apps.get(name);
            const state = await this.store.readState(name);
            for (const release of await this.store.listReleases(name)) {
              if (release.status === "pending") {
                await this.store.settleRelease(name, release.version, "failed", {
                  code: "DEPLOY_INTERRUPTED",
                  message: "The deploy was interrupted before it finished.",
                });
              }
            }
            const current = await this.#pipeline.currentRelease(name);
            const scheduler = this.schedulers.get(app.scheduler ?? this.defaults.scheduler);
            await scheduler?.reconcile?.(name, state.stopped ? undefined : state.deployment, current);
          },
        );
      } catch (error) {
        output.warn(`Could not reconcile ${name}: ${describeError(error)}`);
      }
    }
    await this.hooks.reconcile.promise({ platform: this, output });
  }

  /** The environment a release runs with (config over builder defaults). */
  releaseEnvironment(release: Release): Record<string, string> {
    return releaseEnvironment(release);
  }

  async #requireCurrent(app: string): Promise<Release> {
    const current = await this.#pipeline.currentRelease(app);
    if (!current)
      throw new BerthError("APP_NOT_DEPLOYED", `App ${app} has not been deployed yet; push it first.`, {
        details: { app },
      });
    return current;
  }

  async #updateSettings(
    name: string,
    operation: string,
    change: (app: AppSettings) => AppSettings,
  ): Promise<AppSettings> {
    validateAppName(name);
    return this.#mutate(name, operation, {}, async (app) => {
      const updated = change(app);
      await this.store.writeApp(updated);
      await this.hooks.settingsChanged.promise({ app: updated, previous: app });
      this.events.emit("app.configured", name);
      return updated;
    });
  }

  /** Every mutation: wait for the app's lock (saying so), re-read the app inside it, run. */
  async #mutate<T>(
    name: string,
    operation: string,
    options: OperationOptions,
    work: (app: AppSettings, run: PipelineRun) => Promise<T>,
  ): Promise<T> {
    await this.apps.get(name);
    const output = options.output ?? new Output();
    const signal = options.signal ?? new AbortController().signal;
    return this.locks.withLock(
      name,
      {
        operation,
        timeoutMs: this.#lockTimeoutMs,
        signal,
        onWait: (holder) => {
          output.step(
            `Waiting for ${holder.operation} of ${name} (pid ${holder.pid}, since ${holder.since}) to finish`,
          );
          this.events.emit("lock.waiting", name, { operation, holder: holder.operation });
        },
      },
      async () => work(await this.apps.get(name), { output, signal }),
    );
  }
}

function dedupePorts(mappings: PortMapping[]): PortMapping[] {
  const seen = new Map<string, PortMapping>();
  for (const mapping of mappings) seen.set(formatPortMapping(mapping), mapping);
  return [...seen.values()];
}
