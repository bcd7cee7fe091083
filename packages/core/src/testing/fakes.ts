import { readFile, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { BerthError } from "../errors.js";
import type {
  Artifact,
  Deployment,
  Instance,
  InstanceState,
  InstanceStatus,
  Release,
  Source,
} from "../model.js";
import { releaseEnvironment } from "../pipeline.js";
import type { Platform } from "../platform.js";
import type {
  BerthPlugin,
  BuildContext,
  Builder,
  DeployContext,
  ExecResult,
  LogLine,
  LogsOptions,
  Proxy,
  ProxyStatus,
  RetireContext,
  RouteContext,
  RunOptions,
  RunResult,
  Scheduler,
} from "../plugin.js";

/**
 * In-memory plugins for tests of core and of packages that need a pipeline without Docker or nginx.
 *
 * The fake builder turns a source directory into an artifact; a `FAIL_BUILD` file makes the build fail and
 * `body.txt` becomes the body web instances serve. The fake scheduler runs each process "command" in-process:
 *   serve [text]   an HTTP server on 127.0.0.1 answering 200 with $BODY, else body.txt, else text, else the release id
 *   status N       an HTTP server answering status N
 *   exit N         exits at once with code N
 *   crash          keeps restarting
 *   anything else  stays up without a port
 */

export class FakeBuilder implements Builder {
  readonly name: string;
  builds = 0;

  constructor(name = "fake") {
    this.name = name;
  }

  async detect(source: Source): Promise<boolean> {
    return !(await exists(join(source.dir, "NOT_FAKE")));
  }

  async build(context: BuildContext): Promise<Artifact> {
    this.builds += 1;
    context.output.step(`Building ${context.app.name} with the fake builder`);
    const failure = await readText(join(context.source.dir, "FAIL_BUILD"));
    if (failure !== undefined) {
      throw new BerthError("BUILD_FAILED", `Build failed: ${failure.trim() || "FAIL_BUILD present"}`);
    }
    const body = await readText(join(context.source.dir, "body.txt"));
    const ports = await readText(join(context.source.dir, "PORTS"));
    return {
      builder: this.name,
      image: `fake/${context.app.name}:v${context.version}`,
      defaultProcessTypes: { web: "serve" },
      ...(ports ? { ports: ports.trim().split(/\s+/).map(Number) } : {}),
      metadata: { ...(body === undefined ? {} : { body: body.trim() }), rev: context.source.rev ?? null },
    };
  }
}

export class FakeBuilderPlugin implements BerthPlugin {
  readonly name: string;
  readonly builder: FakeBuilder;

  constructor(builder = new FakeBuilder()) {
    this.builder = builder;
    this.name = `builder-${builder.name}`;
  }

  apply(platform: Platform): void {
    platform.registerBuilder(this.builder);
    platform.hooks.build.tapPromise(this.name, async (context) => {
      if (
        context.builder ? context.builder !== this.builder.name : !(await this.builder.detect(context.source))
      ) {
        return undefined;
      }
      return this.builder.build(context);
    });
  }
}

/** A builder that hands out a fixed artifact: for scheduler conformance runs against real engines. */
export class StaticArtifactBuilderPlugin implements BerthPlugin {
  readonly name = "builder-static";
  constructor(private readonly artifact: () => Promise<Artifact> | Artifact) {}

  apply(platform: Platform): void {
    platform.hooks.build.tapPromise(this.name, async () => this.artifact());
  }
}

interface FakeInstance extends Instance {
  app: string;
  release: string;
  deployment: string;
  command: string;
  env: Record<string, string>;
  running: boolean;
  restarts: number;
  exitCode?: number;
  startedAt: string;
  server?: Server;
  logs: string[];
  body: string;
}

export class FakeScheduler implements Scheduler {
  readonly name: string;
  readonly #instances = new Map<string, FakeInstance[]>();
  #serial = 0;
  /** Process types whose start throws, to test a scheduler failing half-way. */
  failToStart = new Set<string>();
  deploys = 0;
  /** Every one-off command run, in order, with the release it ran in and that release's config. */
  readonly runs: Array<{ app: string; release: string; command: string; env: Record<string, string> }> = [];
  /** When set, one-off runs wait for it before finishing (to test overlapping runs). */
  runGate: Promise<void> | undefined;
  /** Called as each one-off run starts. */
  onRun: ((command: string) => void) | undefined;

  constructor(name = "fake") {
    this.name = name;
  }

  instances(app: string): FakeInstance[] {
    return [...(this.#instances.get(app) ?? [])];
  }

  async deploy(context: DeployContext): Promise<Deployment> {
    this.deploys += 1;
    const { app, release, deploymentId, formation } = context;
    const instances: FakeInstance[] = [];
    const all = this.#instances.get(app.name) ?? [];
    this.#instances.set(app.name, all);
    try {
      for (const [processType, count] of Object.entries(formation)) {
        for (let index = 1; index <= count; index += 1) {
          if (this.failToStart.has(processType)) throw new Error(`could not start ${processType}.${index}`);
          const spec = await context.platform.hooks.instanceSpec.promise(
            {
              app: app.name,
              release: release.id,
              deploymentId,
              processType,
              index,
              command: release.processTypes[processType] ?? "",
              env: { ...releaseEnvironment(release), DYNO: `${processType}.${index}` },
              labels: {},
              port: processType === "web" ? 5000 : undefined,
            },
            { release },
          );
          const instance: FakeInstance = {
            id: `fake-${++this.#serial}`,
            app: app.name,
            release: release.id,
            deployment: deploymentId,
            processType,
            index,
            command: spec.command,
            env: spec.env,
            running: true,
            restarts: 0,
            startedAt: new Date().toISOString(),
            logs: [],
            body: String(release.artifact.metadata?.body ?? ""),
          };
          all.push(instance);
          instances.push(instance);
          await this.#start(instance, release);
        }
      }
    } catch (error) {
      await this.discard(app.name, deploymentId);
      throw error;
    }
    return {
      id: deploymentId,
      app: app.name,
      release: release.id,
      formation,
      scheduler: this.name,
      createdAt: new Date().toISOString(),
      instances: instances.map(publicInstance),
    };
  }

  async #start(instance: FakeInstance, release: Pick<Release, "id">): Promise<void> {
    const [verb, ...rest] = instance.command.trim().split(/\s+/);
    instance.running = true;
    instance.logs.push(`starting ${instance.command}`);
    if (verb === "exit") {
      instance.running = false;
      instance.exitCode = Number(rest[0] ?? 0);
      return;
    }
    if (verb === "crash") {
      instance.restarts = 3;
      return;
    }
    if (verb === "serve" || verb === "status") {
      const status = verb === "status" ? Number(rest[0] ?? 500) : 200;
      const body = instance.env.BODY ?? (instance.body || rest.join(" ") || release.id);
      const server = createServer((_request, response) => {
        response.writeHead(status, { "content-type": "text/plain", connection: "close" });
        response.end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      if (address && typeof address === "object")
        instance.endpoint = { host: "127.0.0.1", port: address.port };
      instance.containerPort = 5000;
      instance.server = server;
    }
  }

  async #halt(instance: FakeInstance): Promise<void> {
    instance.running = false;
    const server = instance.server;
    instance.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  async discard(app: string, deploymentId: string): Promise<void> {
    await this.#remove(app, (instance) => instance.deployment === deploymentId);
  }

  async retire(context: RetireContext): Promise<void> {
    await this.#remove(context.app.name, (instance) => instance.deployment === context.previous.id);
  }

  async #remove(app: string, doomed: (instance: FakeInstance) => boolean): Promise<void> {
    const all = this.#instances.get(app) ?? [];
    await Promise.all(all.filter(doomed).map((instance) => this.#halt(instance)));
    this.#instances.set(
      app,
      all.filter((instance) => !doomed(instance)),
    );
  }

  async instanceState(app: string, instance: Instance): Promise<InstanceState> {
    const found = this.#instances.get(app)?.find((candidate) => candidate.id === instance.id);
    if (!found) return { running: false, restarts: 0 };
    return {
      running: found.running,
      restarts: found.restarts,
      startedAt: found.startedAt,
      ...(found.exitCode === undefined ? {} : { exitCode: found.exitCode }),
    };
  }

  async status(app: string): Promise<InstanceStatus[]> {
    return this.instances(app).map((instance) => ({
      ...publicInstance(instance),
      release: instance.release,
      deployment: instance.deployment,
      running: instance.running,
      restarts: instance.restarts,
      startedAt: instance.startedAt,
    }));
  }

  async stop(app: string): Promise<void> {
    await Promise.all(this.instances(app).map((instance) => this.#halt(instance)));
  }

  async start(app: string): Promise<void> {
    for (const instance of this.instances(app)) {
      if (!instance.running) await this.#start(instance, { id: instance.release });
    }
  }

  async logs(app: string, options: LogsOptions, onLine: (line: LogLine) => void): Promise<void> {
    for (const instance of this.instances(app)) {
      if (options.processType && instance.processType !== options.processType) continue;
      const lines = options.tail === undefined ? instance.logs : instance.logs.slice(-options.tail);
      for (const line of lines) onLine({ source: `${instance.processType}.${instance.index}`, line });
    }
  }

  async run(app: string, release: Release, command: string, options: RunOptions = {}): Promise<RunResult> {
    const env = { ...releaseEnvironment(release), ...options.env };
    this.runs.push({ app, release: release.id, command, env });
    this.onRun?.(command);
    if (this.runGate) await this.runGate;
    const [verb, ...rest] = command.trim().split(/\s+/);
    if (verb === "exit") return { exitCode: Number(rest[0] ?? 0) };
    if (verb === "echo") {
      options.onOutput?.(`${rest.join(" ")}\n`);
      return { exitCode: 0 };
    }
    if (verb === "env") {
      options.onOutput?.(
        `${Object.entries(env)
          .map(([key, value]) => `${key}=${value}`)
          .join("\n")}\n`,
      );
      return { exitCode: 0 };
    }
    return { exitCode: 0 };
  }

  /** Predeploy: `exit N` fails, anything else yields the artifact marked with the command it ran. */
  async commit(app: string, release: Release, command: string, options: RunOptions = {}): Promise<Artifact> {
    const result = await this.run(app, release, command, options);
    if (result.exitCode !== 0) {
      throw new BerthError("RELEASE_PHASE_FAILED", `predeploy exited with code ${result.exitCode}`);
    }
    return {
      ...release.artifact,
      image: `${release.artifact.image}-predeploy`,
      metadata: { ...release.artifact.metadata, predeploy: command },
    };
  }

  async exec(_app: string, _instance: Instance, command: string[]): Promise<ExecResult> {
    return command[0] === "false" ? { exitCode: 1, output: "false\n" } : { exitCode: 0, output: "" };
  }

  async removeApp(app: string): Promise<void> {
    await this.stop(app);
    this.#instances.delete(app);
  }

  async reconcile(app: string, deployment: { id: string } | undefined): Promise<void> {
    await this.#remove(app, (instance) => instance.deployment !== deployment?.id);
  }
}

function publicInstance(instance: FakeInstance): Instance {
  return {
    id: instance.id,
    processType: instance.processType,
    index: instance.index,
    ...(instance.endpoint ? { endpoint: instance.endpoint } : {}),
    ...(instance.containerPort ? { containerPort: instance.containerPort } : {}),
  };
}

export class FakeSchedulerPlugin implements BerthPlugin {
  readonly name: string;
  readonly scheduler: FakeScheduler;

  constructor(scheduler = new FakeScheduler()) {
    this.scheduler = scheduler;
    this.name = `scheduler-${scheduler.name}`;
  }

  apply(platform: Platform): void {
    platform.registerScheduler(this.scheduler);
    platform.hooks.deploy.tapPromise(this.name, async (context) =>
      context.scheduler === this.scheduler.name ? this.scheduler.deploy(context) : undefined,
    );
    platform.hooks.retire.tapPromise(this.name, async (context) => {
      if (context.scheduler === this.scheduler.name) await this.scheduler.retire(context);
    });
    platform.hooks.appDestroyed.tapPromise(this.name, async ({ app }) => {
      if ((app.scheduler ?? platform.defaults.scheduler) === this.scheduler.name)
        await this.scheduler.removeApp(app.name);
    });
  }
}

/** Records where each app's traffic goes; `fetch` sends a request where a real proxy would. */
export class FakeProxy implements Proxy {
  readonly name: string;
  readonly routes = new Map<
    string,
    { domains: string[]; upstreams: Array<{ processType: string; host: string; port: number }> }
  >();
  routeCalls = 0;
  /** Make the next route throw, to test a proxy failing. */
  failNextRoute = false;

  constructor(name = "fake") {
    this.name = name;
  }

  async route(context: RouteContext): Promise<void> {
    this.routeCalls += 1;
    if (this.failNextRoute) {
      this.failNextRoute = false;
      throw new BerthError("ROUTE_FAILED", "fake proxy refused the route");
    }
    const upstreams = context.deployment.instances.flatMap((instance) =>
      instance.processType === "web" && instance.endpoint
        ? [{ processType: "web", ...instance.endpoint }]
        : [],
    );
    this.routes.set(context.app.name, { domains: context.app.domains, upstreams });
  }

  async removeApp(app: string): Promise<void> {
    this.routes.delete(app);
  }

  async status(app: string): Promise<ProxyStatus> {
    const route = this.routes.get(app);
    return {
      routed: route !== undefined,
      domains: route?.domains ?? [],
      upstreams: route?.upstreams ?? [],
      urls: (route?.domains ?? []).map((domain) => `http://${domain}`),
    };
  }

  /** GET the app's first upstream, as the proxy would route a request; undefined when not routed. */
  async fetch(app: string): Promise<{ status: number; body: string } | undefined> {
    const upstream = this.routes.get(app)?.upstreams[0];
    if (!upstream) return undefined;
    const response = await fetch(`http://${upstream.host}:${upstream.port}/`);
    return { status: response.status, body: await response.text() };
  }
}

export class FakeProxyPlugin implements BerthPlugin {
  readonly name: string;
  readonly proxy: FakeProxy;

  constructor(proxy = new FakeProxy()) {
    this.proxy = proxy;
    this.name = `proxy-${proxy.name}`;
  }

  apply(platform: Platform): void {
    platform.registerProxy(this.proxy);
    platform.hooks.route.tapPromise(this.name, async (context) => {
      if (context.proxy === this.proxy.name) await this.proxy.route(context);
    });
    platform.hooks.appDestroyed.tapPromise(this.name, async ({ app }) => this.proxy.removeApp(app.name));
    platform.hooks.domainsChanged.tapPromise(this.name, async ({ app }) => {
      const route = this.proxy.routes.get(app.name);
      if (route) route.domains = app.domains;
    });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}
