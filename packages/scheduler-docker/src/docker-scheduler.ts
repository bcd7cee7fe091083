import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import {
  type Artifact,
  BerthError,
  type DeployContext,
  type Deployment,
  type DeploymentRecord,
  describeError,
  type Endpoint,
  type ExecResult,
  type Instance,
  type InstanceSpec,
  type InstanceState,
  type InstanceStatus,
  isBerthError,
  type LogLine,
  type LogsOptions,
  type Platform,
  type Release,
  type RetireContext,
  type RunOptions,
  type RunResult,
  releaseEnvironment,
  type Scheduler,
  validateAppName,
  validateConfigVars,
  validateProcessType,
} from "@berth/core";
import Docker from "dockerode";
import {
  type DockerAppSettings,
  limitsFor,
  parseDockerSettings,
  parseRestartPolicy,
  type RestartPolicy,
  SETTINGS_KEY,
} from "./settings.js";
import { DockerStreamDemuxer, LineSplitter, splitTimestamp, streamFinished } from "./streams.js";

export interface DockerSchedulerOptions {
  /** A dockerode client; default one on `socketPath`, else on DOCKER_HOST or /var/run/docker.sock. */
  docker?: Docker;
  /** Path of the engine's socket, when no `docker` client is given. */
  socketPath?: string;
  /** The name apps select this scheduler by; default `docker` (the platform's default scheduler). */
  name?: string;
  /** Restart policy of instances unless the app sets its own; default `on-failure:10`. */
  restartPolicy?: string;
  /** How long a stopped instance may take to exit after SIGTERM before it is killed; default 10 s. */
  stopGracePeriodSeconds?: number;
  /** How long `start` and `reconcile` wait for restarted web instances to answer HTTP; default 30 s, 0 to not wait. */
  readyTimeoutMs?: number;
  /**
   * `engine` (default): the engine assigns each web instance a free host port when it starts, so an instance the
   * restart policy or an engine restart brings back answers on a new port. `stable`: Berth picks a free port when
   * the instance is created and the instance keeps it for its whole life, so proxies need no update after restarts.
   */
  hostPorts?: "engine" | "stable";
}

/** Labels that make the engine's state the scheduler's memory: every query starts from them. */
export const LABELS = {
  app: "berth.app",
  release: "berth.release",
  deployment: "berth.deployment",
  processType: "berth.process-type",
  index: "berth.index",
  oneOff: "berth.one-off",
} as const;

const DEFAULT_WEB_PORT = 5000;

interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
}

type EngineError = Error & { statusCode?: number; json?: { message?: string } };

function statusCode(error: unknown): number | undefined {
  return (error as EngineError | undefined)?.statusCode;
}

/** The engine's own explanation, without dockerode's `(HTTP code 500) server error -` preamble. */
function engineMessage(error: unknown): string {
  const message = (error as EngineError | undefined)?.json?.message;
  return typeof message === "string" ? message : describeError(error);
}

/** Ignores "already gone / already in that state" answers, which make removal and stopping idempotent. */
async function tolerate(work: Promise<unknown>, codes: number[] = [304, 404]): Promise<void> {
  try {
    await work;
  } catch (error) {
    if (!codes.includes(statusCode(error) ?? 0)) throw error;
  }
}

function environmentList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([key, value]) => `${key}=${value}`);
}

/** The container-name part that tells two generations of one instance apart. */
export function deploymentSuffix(deploymentId: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(deploymentId)) return deploymentId;
  return createHash("sha256").update(deploymentId).digest("hex").slice(0, 12);
}

/** `<app>.<type>.<n>.<deployment>`: readable in `docker ps`, unique across generations. */
export function containerName(app: string, processType: string, index: number, deploymentId: string): string {
  return `${app}.${processType}.${index}.${deploymentSuffix(deploymentId)}`;
}

/** The network every app's instances and one-offs join unless the app asks for its own. */
export const SHARED_NETWORK = "berth";

/** The network an app's instances join: the shared one, or `berth-<app>` with the `isolatedNetwork` setting. */
export function networkName(app: string, isolated = false): string {
  return isolated ? `berth-${app}` : SHARED_NETWORK;
}

/** The port the web process listens on: the artifact's first declared port, else 5000. */
export function webPort(release: Release): number {
  return release.artifact.ports?.[0] ?? DEFAULT_WEB_PORT;
}

/**
 * How a process starts: buildpack images through `/start <type>`; the image's own CMD while the process keeps
 * the image's default command; otherwise `sh -c <command>` after the image's ENTRYPOINT (as Dokku does).
 */
export function processCommand(
  artifact: Artifact,
  processType: string,
  command: string,
): string[] | undefined {
  if (artifact.launcher === "start") return ["/start", processType];
  if (
    artifact.imageDefaultProcess === processType &&
    command === artifact.defaultProcessTypes?.[processType]
  ) {
    return undefined;
  }
  return ["/bin/sh", "-c", command];
}

/** A one-off command: buildpack images run it through `/exec`, which loads the buildpacks' environment. */
function oneOffCommand(artifact: Artifact, command: string): string[] {
  return artifact.launcher === "start" ? ["/exec", "sh", "-c", command] : ["/bin/sh", "-c", command];
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new BerthError("ABORTED", "The operation was aborted.");
}

/**
 * Runs each process type of a release as Docker containers on one engine. The engine is the source of truth:
 * every container carries labels (app, release, deployment, process type, index) and every query lists by them,
 * so nothing is lost when the process that deployed goes away.
 */
export class DockerScheduler implements Scheduler {
  readonly name: string;
  readonly docker: Docker;
  readonly #defaults: { restartPolicy: RestartPolicy; stopGracePeriodSeconds: number };
  readonly #readyTimeoutMs: number;
  readonly #hostPorts: "engine" | "stable";
  #platform: Platform | undefined;
  /** App renamed from → to, so the old name's instances are still retired after the rename's rollout. */
  readonly #renamedFrom = new Map<string, string>();
  /** Networks this scheduler created or found, so deploys do not ask the engine each time. */
  readonly #networks = new Set<string>();

  constructor(options: DockerSchedulerOptions = {}) {
    this.name = options.name ?? "docker";
    this.docker =
      options.docker ?? (options.socketPath ? new Docker({ socketPath: options.socketPath }) : new Docker());
    this.#defaults = {
      restartPolicy: parseRestartPolicy(options.restartPolicy ?? "on-failure:10"),
      stopGracePeriodSeconds: options.stopGracePeriodSeconds ?? 10,
    };
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
    this.#hostPorts = options.hostPorts ?? "engine";
  }

  /**
   * Gives the scheduler the platform it serves, so instances it re-creates outside a deploy (reconcile) pass
   * through `instanceSpec` taps and the app's settings too. The plugin calls this in `apply`.
   */
  connect(platform: Platform): void {
    this.#platform = platform;
  }

  /** Remembers a rename so the rollout under the new name retires the instances still named after the old one. */
  renamed(from: string, to: string): void {
    this.#renamedFrom.set(to, from);
  }

  /** The app's settings for this scheduler, judged; throws INVALID_SETTING. */
  settings(raw: Record<string, unknown> | undefined): DockerAppSettings {
    return parseDockerSettings(raw as Parameters<typeof parseDockerSettings>[0], this.#defaults);
  }

  // --- deploy, discard, retire ---

  async deploy(context: DeployContext): Promise<Deployment> {
    const { app, release, deploymentId, formation, platform, signal } = context;
    validateAppName(app.name);
    const settings = this.settings(app.plugins[SETTINGS_KEY]);
    const types = Object.entries(formation).filter(([, count]) => count > 0);
    for (const [type] of types) {
      validateProcessType(type);
      if (release.processTypes[type] === undefined) {
        throw new BerthError(
          "INVALID_SCALE",
          `${release.id} of ${app.name} has no process type ${type} (it has ${Object.keys(release.processTypes).join(", ")}).`,
          { details: { type } },
        );
      }
    }
    await this.#requireImage(release);
    signal.throwIfAborted();
    const network = await this.#ensureNetwork(app.name);
    const specs: InstanceSpec[] = [];
    for (const [processType, count] of types) {
      for (let index = 1; index <= count; index += 1) {
        specs.push(await this.#shapeSpec(platform, release, deploymentId, processType, index));
      }
    }
    signal.throwIfAborted();
    // Instances start in parallel: a deploy waits for the slowest container, not for the sum of them.
    const started = await Promise.allSettled(
      specs.map((spec) => this.#createInstance(spec, release, settings, network, signal)),
    );
    const failed = started.flatMap((result, position) =>
      result.status === "rejected" ? [{ spec: specs[position], reason: result.reason }] : [],
    );
    if (failed.length > 0) {
      await this.discard(app.name, deploymentId);
      const first = failed[0];
      if (signal.aborted) throw abortError(signal);
      throw new BerthError(
        "SCHEDULER_FAILED",
        `Could not start ${first?.spec?.processType}.${first?.spec?.index} of ${app.name} ${release.id}: ${
          isBerthError(first?.reason) ? first.reason.message : engineMessage(first?.reason)
        }`,
        { cause: first?.reason, details: { app: app.name, release: release.id } },
      );
    }
    return {
      id: deploymentId,
      app: app.name,
      release: release.id,
      formation,
      scheduler: this.name,
      createdAt: new Date().toISOString(),
      instances: started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : [])),
    };
  }

  async discard(app: string, deploymentId: string): Promise<void> {
    validateAppName(app);
    const containers = await this.#list({ app, deployment: deploymentId });
    await Promise.all(containers.map((container) => this.#remove(container.id)));
  }

  async retire(context: RetireContext): Promise<void> {
    const app = context.app.name;
    const settings = this.#settingsOrDefaults(context.app.plugins[SETTINGS_KEY]);
    const owners = [app, this.#renamedFrom.get(app)].filter((name): name is string => name !== undefined);
    const containers = (
      await Promise.all(owners.map((owner) => this.#list({ app: owner, deployment: context.previous.id })))
    ).flat();
    await Promise.all(
      containers.map((container) => this.#stopAndRemove(container.id, settings.stopGracePeriodSeconds)),
    );
    const from = this.#renamedFrom.get(app);
    if (from !== undefined && (await this.#list({ app: from })).length === 0) {
      this.#renamedFrom.delete(app);
      await this.#removeNetwork(from);
    }
  }

  // --- state ---

  async instanceState(app: string, instance: Instance): Promise<InstanceState> {
    validateAppName(app);
    const info = await this.#inspect(instance.id);
    if (!info || info.Config.Labels?.[LABELS.app] !== app) return { running: false, restarts: 0 };
    return stateOf(info);
  }

  async status(app: string): Promise<InstanceStatus[]> {
    validateAppName(app);
    const containers = await this.#list({ app, instancesOnly: true });
    const inspected = await Promise.all(containers.map((container) => this.#inspect(container.id)));
    return inspected
      .flatMap((info) => (info ? [statusOf(info)] : []))
      .sort((left, right) =>
        left.processType === right.processType
          ? left.index - right.index
          : left.processType.localeCompare(right.processType),
      );
  }

  async stop(app: string): Promise<void> {
    validateAppName(app);
    const settings = await this.#appSettings(app);
    const containers = await this.#list({ app, instancesOnly: true });
    await Promise.all(
      containers.map((container) =>
        tolerate(this.docker.getContainer(container.id).stop({ t: settings.stopGracePeriodSeconds })),
      ),
    );
  }

  async start(app: string): Promise<void> {
    validateAppName(app);
    const containers = await this.#list({ app, instancesOnly: true });
    await Promise.all(
      containers
        .filter((container) => !container.running)
        .map((container) => tolerate(this.docker.getContainer(container.id).start())),
    );
    await this.#waitUntilAnswering(app);
  }

  // --- logs, run, exec ---

  async logs(app: string, options: LogsOptions, onLine: (line: LogLine) => void): Promise<void> {
    validateAppName(app);
    if (options.processType !== undefined) validateProcessType(options.processType);
    const containers = (await this.#list({ app, instancesOnly: true })).filter(
      (container) =>
        options.processType === undefined || container.labels[LABELS.processType] === options.processType,
    );
    const sourceOf = (container: ContainerSummary) =>
      `${container.labels[LABELS.processType]}.${container.labels[LABELS.index]}`;
    const request = {
      stdout: true,
      stderr: true,
      timestamps: true,
      ...(options.tail === undefined ? {} : { tail: Math.max(0, Math.floor(options.tail)) }),
    };
    if (!options.follow) {
      const collected: LogLine[] = [];
      await Promise.all(
        containers.map(async (container) => {
          const buffer = await tolerateMissing(
            this.docker.getContainer(container.id).logs({ ...request, follow: false }),
          );
          if (buffer) readLogFrames(buffer, sourceOf(container), (line) => collected.push(line));
        }),
      );
      // Interleave instances by time, as one app log.
      collected.sort((left, right) => (left.time ?? "").localeCompare(right.time ?? ""));
      for (const line of collected) onLine(line);
      return;
    }
    await this.#followLogs(app, options, request, onLine);
  }

  /**
   * `logs --tail`: every current instance, and — while the signal is not aborted — every instance that starts
   * later (a deploy, a scale, a restart by the restart policy), as `heroku logs --tail` does. Without a signal it
   * ends when the current instances stop.
   */
  async #followLogs(
    app: string,
    options: LogsOptions,
    request: { stdout: boolean; stderr: boolean; timestamps: boolean; tail?: number },
    onLine: (line: LogLine) => void,
  ): Promise<void> {
    const signal = options.signal;
    type Closable = NodeJS.ReadableStream & { destroy(): void };
    const following = new Map<string, Closable | undefined>();
    const wanted = (labels: Record<string, string>) =>
      labels[LABELS.processType] !== undefined &&
      (options.processType === undefined || labels[LABELS.processType] === options.processType);
    // Docker ends a follow stream when its container stops; the restart policy may start it again before or
    // after that end is seen. Each instance is followed again from just after the last line already given.
    const restarted = new Set<string>();
    const lastSeen = new Map<string, string>();
    const emptyStreams = new Map<string, number>();
    const follow = async (id: string, labels: Record<string, string>, initial: boolean): Promise<void> => {
      if (signal?.aborted) return;
      if (following.has(id)) {
        restarted.add(id);
        return;
      }
      following.set(id, undefined);
      const last = lastSeen.get(id);
      const stream = (await tolerateMissing(
        this.docker.getContainer(id).logs({
          stdout: request.stdout,
          stderr: request.stderr,
          timestamps: request.timestamps,
          follow: true,
          // `tail` applies to what ran before the call; an instance seen before resumes after its last line.
          ...(last !== undefined
            ? { since: unixSeconds(last) }
            : initial && request.tail !== undefined
              ? { tail: request.tail }
              : {}),
        }),
      )) as Closable | undefined;
      if (!stream || signal?.aborted) {
        following.delete(id);
        stream?.destroy();
        return;
      }
      following.set(id, stream);
      const source = `${labels[LABELS.processType]}.${labels[LABELS.index]}`;
      let delivered = false;
      const splitter = new LineSplitter((text) => {
        const line = { source, ...definedTime(splitTimestamp(text)) };
        const seen = lastSeen.get(id);
        // Docker's timestamps have a fixed width, so text order is time order.
        if (line.time !== undefined && seen !== undefined && line.time <= seen) return;
        if (line.time !== undefined) lastSeen.set(id, line.time);
        delivered = true;
        onLine(line);
      });
      const demuxer = new DockerStreamDemuxer((_stream, payload) => splitter.push(payload));
      stream.on("data", (chunk: Buffer) => demuxer.push(chunk));
      await streamFinished(stream, 2 ** 31 - 1);
      splitter.flush();
      following.delete(id);
      if (!signal || signal.aborted) return;
      if (restarted.delete(id)) return follow(id, labels, false);
      // The start event may have come before the engine could serve the new stream: look again, but never
      // spin on a stream that keeps ending without a line.
      const emptyEnds = delivered ? 0 : (emptyStreams.get(id) ?? 0) + 1;
      emptyStreams.set(id, emptyEnds);
      const info = await this.#inspect(id);
      if (info?.State.Running && !info.State.Restarting && emptyEnds <= 1) return follow(id, labels, false);
    };

    // Subscribed before listing, so an instance starting in between is not missed (`following` drops doubles).
    const events = signal
      ? ((await this.docker.getEvents({
          filters: { type: ["container"], event: ["start"], label: [`${LABELS.app}=${app}`] },
        })) as Closable)
      : undefined;
    const pending: Promise<void>[] = [];
    events?.on(
      "data",
      (
        (splitter) => (chunk: Buffer) =>
          splitter.push(chunk)
      )(
        new LineSplitter((line) => {
          const event = parseEvent(line);
          if (event && wanted(event.labels)) pending.push(follow(event.id, event.labels, false));
        }),
      ),
    );
    const containers = (await this.#list({ app, instancesOnly: true })).filter((container) =>
      wanted(container.labels),
    );
    const current = containers.map((container) => follow(container.id, container.labels, true));
    if (!signal) {
      await Promise.all(current);
      return;
    }
    const stopAll = () => {
      events?.destroy();
      for (const stream of following.values()) stream?.destroy();
    };
    if (signal.aborted) stopAll();
    signal.addEventListener("abort", stopAll, { once: true });
    try {
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await Promise.all([...current, ...pending]);
    } finally {
      signal.removeEventListener("abort", stopAll);
    }
  }

  async run(app: string, release: Release, command: string, options: RunOptions = {}): Promise<RunResult> {
    validateAppName(app);
    const network = await this.#ensureNetwork(app);
    const settings = this.#settingsOrDefaults((await this.#readApp(app))?.plugins[SETTINGS_KEY]);
    await this.#requireImage(release);
    const limits = limitsFor(settings, "run");
    const container = await this.#createContainer(network, {
      name: `${app}.run.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
      Image: release.artifact.image,
      Cmd: oneOffCommand(release.artifact, command),
      Env: environmentList({
        ...releaseEnvironment(release),
        ...options.env,
        PORT: String(webPort(release)),
        DYNO: "run.1",
      }),
      Labels: { [LABELS.app]: app, [LABELS.release]: release.id, [LABELS.oneOff]: "run" },
      OpenStdin: options.stdin !== undefined,
      StdinOnce: options.stdin !== undefined,
      AttachStdin: options.stdin !== undefined,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: {
        Init: true,
        NetworkMode: network,
        Mounts: mountsOf(settings),
        ...(limits.memory === undefined ? {} : { Memory: limits.memory }),
        ...(limits.nanoCpus === undefined ? {} : { NanoCpus: limits.nanoCpus }),
      },
    });
    try {
      const exitCode = await this.#attachAndWait(container, options);
      return { exitCode };
    } finally {
      await tolerate(container.remove({ force: true, v: true }));
    }
  }

  async exec(
    app: string,
    instance: Instance,
    command: string[],
    options: { timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    validateAppName(app);
    if (!Array.isArray(command) || command.length === 0 || command.some((part) => typeof part !== "string")) {
      throw new BerthError("INVALID_SETTING", "A check command must be a non-empty list of strings.");
    }
    const info = await this.#inspect(instance.id);
    if (!info || info.Config.Labels?.[LABELS.app] !== app) {
      throw new BerthError("SCHEDULER_FAILED", `Instance ${instance.id} of ${app} does not exist.`);
    }
    const exec = await this.docker
      .getContainer(instance.id)
      .exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    let output = "";
    const splitter = new DockerStreamDemuxer((_stream, payload) => {
      // Checks only look at the end of their output; never hold an endless one in memory.
      output = (output + payload.toString("utf8")).slice(-64_000);
    });
    stream.on("data", (chunk: Buffer) => splitter.push(chunk));
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    await streamFinished(stream, timeoutMs);
    let result = await exec.inspect();
    // The output stream may close a moment before the engine records the exit code.
    for (let delay = 5; result.Running && Date.now() < deadline; delay = Math.min(delay * 2, 100)) {
      await sleep(delay);
      result = await exec.inspect();
    }
    if (result.Running) {
      stream.destroy();
      throw new BerthError("CHECK_FAILED", `${command.join(" ")} did not finish within ${timeoutMs / 1000}s`);
    }
    return { exitCode: result.ExitCode ?? -1, output };
  }

  // --- predeploy commit ---

  async commit(app: string, release: Release, command: string, options: RunOptions = {}): Promise<Artifact> {
    validateAppName(app);
    const image = await this.#requireImage(release);
    const network = await this.#ensureNetwork(app);
    // The container idles on a shell reading an open stdin; the command runs through `exec` with the release's
    // config, so the config never becomes part of the container's (and thus the committed image's) settings.
    const container = await this.#createContainer(network, {
      name: `${app}.predeploy.${release.id}.${Date.now().toString(36)}`,
      Image: release.artifact.image,
      Entrypoint: ["/bin/sh"],
      Cmd: [],
      OpenStdin: true,
      Labels: { [LABELS.app]: app, [LABELS.release]: release.id },
      HostConfig: { Init: true, NetworkMode: network },
    });
    try {
      await container.start();
      const exec = await container.exec({
        Cmd: oneOffCommand(release.artifact, command),
        Env: environmentList({ ...releaseEnvironment(release), ...options.env, DYNO: "predeploy.1" }),
        AttachStdout: true,
        AttachStderr: true,
      });
      const stream = await exec.start({ hijack: true, stdin: false });
      let tail = "";
      const demuxer = new DockerStreamDemuxer((_stream, payload) => {
        const text = payload.toString("utf8");
        tail = (tail + text).slice(-4000);
        options.onOutput?.(text);
      });
      stream.on("data", (chunk: Buffer) => demuxer.push(chunk));
      const timeoutMs = options.timeoutMs ?? 3_600_000;
      await untilFinished(streamFinished(stream, timeoutMs), options.signal, () => stream.destroy());
      if (options.signal?.aborted) throw abortError(options.signal);
      let result = await exec.inspect();
      for (let delay = 5; result.Running && delay < 2000; delay *= 2) {
        await sleep(delay);
        result = await exec.inspect();
      }
      if (result.Running || result.ExitCode !== 0) {
        const lines = tail.trimEnd().split("\n").slice(-20).join("\n");
        throw new BerthError(
          "RELEASE_PHASE_FAILED",
          `The predeploy command of ${app} ${release.id} ${result.Running ? `did not finish within ${timeoutMs / 1000}s` : `exited with code ${result.ExitCode}`}; nothing was deployed. Its output ended with:\n${lines}`,
          { details: { app, release: release.id, exitCode: result.ExitCode, output: lines } },
        );
      }
      const { repository, tag } = commitReference(app, release);
      const config = image.Config as Docker.ImageInspectInfo["Config"] & { StopSignal?: string };
      await container.commit({
        _query: { container: container.id, repo: repository, tag, pause: true },
        _body: {
          // The image keeps its own start-up settings; the idle shell of this container must not leak into it.
          Cmd: config.Cmd ?? [],
          // An empty list, not a missing one: the engine fills missing fields from the container (the idle shell).
          Entrypoint: config.Entrypoint ?? [],
          Env: config.Env ?? [],
          WorkingDir: config.WorkingDir ?? "",
          User: config.User ?? "",
          ExposedPorts: config.ExposedPorts ?? {},
          Labels: { ...(config.Labels ?? {}), [LABELS.app]: app, [LABELS.release]: release.id },
          ...(config.StopSignal ? { StopSignal: config.StopSignal } : {}),
        },
      } as object);
      return {
        ...release.artifact,
        image: `${repository}:${tag}`,
        metadata: { ...(release.artifact.metadata ?? {}), predeployFrom: release.artifact.image },
      };
    } finally {
      await tolerate(container.remove({ force: true, v: true }));
    }
  }

  // --- removal, pruning, reconcile ---

  async removeApp(app: string): Promise<void> {
    validateAppName(app);
    const containers = await this.#list({ app });
    await Promise.all(containers.map((container) => this.#remove(container.id)));
    const images = await this.docker.listImages({ filters: { label: [`${LABELS.app}=${app}`] } });
    for (const image of images)
      await tolerate(this.docker.getImage(image.Id).remove({ force: true }), [404, 409]);
    // Images built before a rename carry the old name's label; the app's releases still name them. Only images
    // Berth built (labelled berth.app) go: an image deployed with --from-image belongs to the user.
    const releases = this.#platform ? await this.#platform.store.listReleases(app) : [];
    for (const reference of new Set(releases.map((release) => release.artifact.image))) {
      const image = await this.#inspectImage(reference);
      if (image?.Config?.Labels?.[LABELS.app] === undefined) continue;
      await tolerate(this.docker.getImage(image.Id).remove({ force: true }), [404, 409]);
    }
    await this.#removeNetwork(app);
  }

  async pruneArtifacts(app: string, keep: Release[], prune: Release[]): Promise<void> {
    validateAppName(app);
    const keptIds = new Set<string>();
    for (const release of keep) {
      const info = await this.#inspectImage(release.artifact.image);
      if (info) keptIds.add(info.Id);
      // A release's build image stays while the release is kept, even when predeploy committed a new one.
      const base = release.artifact.metadata?.predeployFrom;
      if (typeof base === "string") {
        const baseInfo = await this.#inspectImage(base);
        if (baseInfo) keptIds.add(baseInfo.Id);
      }
    }
    const candidates = new Set<string>();
    for (const release of prune) {
      candidates.add(release.artifact.image);
      const labelled = await this.docker.listImages({
        filters: { label: [`${LABELS.app}=${app}`, `${LABELS.release}=${release.id}`] },
      });
      for (const image of labelled)
        for (const tag of image.RepoTags ?? []) if (tag !== "<none>:<none>") candidates.add(tag);
    }
    for (const reference of candidates) {
      const info = await this.#inspectImage(reference);
      // Only images built for this app are ever removed; a base image another release shares is kept.
      if (!info || keptIds.has(info.Id) || info.Config.Labels?.[LABELS.app] !== app) continue;
      await tolerate(this.docker.getImage(reference).remove(), [404, 409]);
    }
  }

  async reconcile(
    app: string,
    deployment: DeploymentRecord | undefined,
    release: Release | undefined,
  ): Promise<void> {
    validateAppName(app);
    const containers = await this.#list({ app });
    const leftovers = containers.filter((container) => {
      if (container.labels[LABELS.processType] === undefined) return !container.running; // finished one-offs
      if (deployment) return container.labels[LABELS.deployment] !== deployment.id;
      // No serving deployment: a stopped app keeps its instances (start brings them back); anything of another
      // release is an interrupted deploy. Without any release, everything is left over.
      return release === undefined || container.labels[LABELS.release] !== release.id;
    });
    await Promise.all(leftovers.map((container) => this.#remove(container.id)));
    if (!deployment) {
      // A stopped app stays stopped, even when its restart policy brought instances back with the engine.
      const settings = await this.#appSettings(app);
      const running = containers.filter(
        (container) =>
          container.running &&
          container.labels[LABELS.processType] !== undefined &&
          !leftovers.includes(container),
      );
      await Promise.all(
        running.map((container) =>
          tolerate(this.docker.getContainer(container.id).stop({ t: settings.stopGracePeriodSeconds })),
        ),
      );
      return;
    }
    if (!release) return;
    const mine = containers.filter((container) => container.labels[LABELS.deployment] === deployment.id);
    const settings = await this.#appSettings(app);
    const network = await this.#ensureNetwork(app);
    const work: Promise<unknown>[] = [];
    for (const [processType, count] of Object.entries(deployment.formation)) {
      for (let index = 1; index <= count; index += 1) {
        const existing = mine.find(
          (container) =>
            container.labels[LABELS.processType] === processType &&
            container.labels[LABELS.index] === String(index),
        );
        if (existing) {
          // 409: the engine is restarting it right now, which is what reconcile wants anyway.
          if (!existing.running)
            work.push(tolerate(this.docker.getContainer(existing.id).start(), [304, 404, 409]));
          continue;
        }
        work.push(
          (async () => {
            const spec = await this.#shapeSpec(this.#platform, release, deployment.id, processType, index);
            await this.#createInstance(spec, release, settings, network, new AbortController().signal);
          })(),
        );
      }
    }
    const results = await Promise.allSettled(work);
    const failure = results.find((result) => result.status === "rejected");
    if (failure?.status === "rejected") {
      throw new BerthError(
        "SCHEDULER_FAILED",
        `Could not bring ${app} back: ${engineMessage(failure.reason)}`,
        {
          cause: failure.reason,
        },
      );
    }
    await this.#waitUntilAnswering(app);
  }

  // --- internals ---

  #baseSpec(release: Release, deploymentId: string, processType: string, index: number): InstanceSpec {
    const port = webPort(release);
    return {
      app: release.app,
      release: release.id,
      deploymentId,
      processType,
      index,
      command: release.processTypes[processType] ?? "",
      env: { ...releaseEnvironment(release), PORT: String(port), DYNO: `${processType}.${index}` },
      labels: {},
      port: processType === "web" ? port : undefined,
    };
  }

  /** The base spec through the `instanceSpec` taps, which may add to it but not change which instance it is. */
  async #shapeSpec(
    platform: Platform | undefined,
    release: Release,
    deploymentId: string,
    processType: string,
    index: number,
  ): Promise<InstanceSpec> {
    const base = this.#baseSpec(release, deploymentId, processType, index);
    if (!platform) return base;
    const spec = await platform.hooks.instanceSpec.promise(base, { release });
    if (
      spec.app !== base.app ||
      spec.deploymentId !== deploymentId ||
      spec.processType !== processType ||
      spec.index !== index
    ) {
      throw new BerthError(
        "INVALID_RELEASE",
        `An instanceSpec tap changed which instance ${processType}.${index} of ${release.app} is; taps may only add env, labels or change the command.`,
      );
    }
    validateConfigVars(spec.env);
    return spec;
  }

  async #createInstance(
    spec: InstanceSpec,
    release: Release,
    settings: DockerAppSettings,
    network: string,
    signal: AbortSignal,
  ): Promise<Instance> {
    const limits = limitsFor(settings, spec.processType);
    const portKey = spec.port === undefined ? undefined : `${spec.port}/tcp`;
    const command = processCommand(release.artifact, spec.processType, spec.command);
    const create = (hostPort: string) =>
      this.#createContainer(network, {
        name: containerName(spec.app, spec.processType, spec.index, spec.deploymentId),
        Image: release.artifact.image,
        ...(command ? { Cmd: command } : {}),
        Env: environmentList(spec.env),
        // Berth's own labels are written last: a tap may add labels but never re-assign an instance.
        Labels: {
          ...spec.labels,
          [LABELS.app]: spec.app,
          [LABELS.release]: spec.release,
          [LABELS.deployment]: spec.deploymentId,
          [LABELS.processType]: spec.processType,
          [LABELS.index]: String(spec.index),
        },
        ...(portKey ? { ExposedPorts: { [portKey]: {} } } : {}),
        HostConfig: {
          Init: true,
          RestartPolicy: settings.restartPolicy,
          NetworkMode: network,
          Mounts: mountsOf(settings),
          ...(portKey ? { PortBindings: { [portKey]: [{ HostIp: "127.0.0.1", HostPort: hostPort }] } } : {}),
          ...(limits.memory === undefined ? {} : { Memory: limits.memory }),
          ...(limits.nanoCpus === undefined ? {} : { NanoCpus: limits.nanoCpus }),
        },
      });
    for (let attempt = 1; ; attempt += 1) {
      signal.throwIfAborted();
      const stable = portKey !== undefined && this.#hostPorts === "stable";
      const container = await create(stable ? String(await freeLoopbackPort()) : "");
      signal.throwIfAborted();
      try {
        await container.start();
      } catch (error) {
        // A stable port picked a moment ago may have been taken since: pick another.
        if (
          !stable ||
          attempt >= 5 ||
          !/already allocated|address already in use/i.test(engineMessage(error))
        ) {
          throw error;
        }
        await this.#remove(container.id);
        continue;
      }
      return instanceOf(await container.inspect());
    }
  }

  /** Creates a container on the app's network, re-creating the network once if someone removed it. */
  async #createContainer(network: string, options: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    try {
      return await this.docker.createContainer(options);
    } catch (error) {
      if (statusCode(error) !== 404 || !/network/i.test(engineMessage(error))) throw error;
      this.#networks.delete(network);
      const app = options.Labels?.[LABELS.app];
      if (app === undefined) throw error;
      await this.#ensureNetwork(app);
      return this.docker.createContainer(options);
    }
  }

  async #stopAndRemove(id: string, graceSeconds: number): Promise<void> {
    // `stop` sends SIGTERM (forwarded by --init) and kills after the grace period; it also keeps the restart
    // policy from bringing the process back while it drains.
    await tolerate(this.docker.getContainer(id).stop({ t: graceSeconds }));
    await this.#remove(id);
  }

  async #remove(id: string): Promise<void> {
    await tolerate(this.docker.getContainer(id).remove({ force: true, v: true }), [404, 409]);
  }

  async #list(filter: {
    app: string;
    deployment?: string;
    instancesOnly?: boolean;
  }): Promise<ContainerSummary[]> {
    const labels = [`${LABELS.app}=${filter.app}`];
    if (filter.deployment !== undefined) labels.push(`${LABELS.deployment}=${filter.deployment}`);
    if (filter.instancesOnly) labels.push(LABELS.processType);
    const containers = await this.docker.listContainers({ all: true, filters: { label: labels } });
    return containers.map((container) => ({
      id: container.Id,
      name: (container.Names[0] ?? "").replace(/^\//, ""),
      labels: container.Labels ?? {},
      running: container.State === "running",
    }));
  }

  async #inspect(id: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async #inspectImage(reference: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(reference).inspect();
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async #requireImage(release: Release): Promise<Docker.ImageInspectInfo> {
    const image = await this.#inspectImage(release.artifact.image);
    if (!image) {
      throw new BerthError(
        "SCHEDULER_FAILED",
        `Image ${release.artifact.image} of ${release.app} ${release.id} is not on this Docker engine; rebuild the app (its image may have been pruned or removed).`,
        { details: { app: release.app, release: release.id, image: release.artifact.image } },
      );
    }
    return image;
  }

  /** Creates the app's network ahead of its first deploy (the plugin calls this when an app is created). */
  async prepareApp(app: string): Promise<void> {
    validateAppName(app);
    await this.#ensureNetwork(app);
  }

  async #ensureNetwork(app: string): Promise<string> {
    const isolated = this.#settingsOrDefaults(
      (await this.#readApp(app))?.plugins[SETTINGS_KEY],
    ).isolatedNetwork;
    const name = networkName(app, isolated);
    // Known networks skip the engine round trip; one removed behind our back is re-created on the next failure.
    if (this.#networks.has(name)) return name;
    try {
      await this.docker.createNetwork({
        Name: name,
        CheckDuplicate: true,
        Labels: isolated ? { [LABELS.app]: app } : { "berth.network": "shared" },
      });
    } catch (error) {
      // 409: it exists already (an earlier run of Berth, or another generation a moment ago).
      if (statusCode(error) !== 409) {
        throw new BerthError(
          "SCHEDULER_FAILED",
          `Could not create network ${name}: ${engineMessage(error)}`,
          {
            cause: error,
          },
        );
      }
    }
    this.#networks.add(name);
    return name;
  }

  /** Removes the app's own network, if it has one; the shared network stays. */
  async #removeNetwork(app: string): Promise<void> {
    const name = networkName(app, true);
    this.#networks.delete(name);
    const networks = await this.docker.listNetworks({ filters: { name: [name] } });
    for (const network of networks.filter((candidate) => candidate.Name === name)) {
      await tolerate(this.docker.getNetwork(network.Id).remove(), [404, 409]);
    }
  }

  async #readApp(app: string) {
    return this.#platform ? await this.#platform.store.readApp(app) : undefined;
  }

  async #appSettings(app: string): Promise<DockerAppSettings> {
    return this.#settingsOrDefaults((await this.#readApp(app))?.plugins[SETTINGS_KEY]);
  }

  /** For operations on what already runs: a setting that became invalid must not keep an app from stopping. */
  #settingsOrDefaults(raw: Record<string, unknown> | undefined): DockerAppSettings {
    try {
      return this.settings(raw);
    } catch {
      return this.settings(undefined);
    }
  }

  async #attachAndWait(container: Docker.Container, options: RunOptions): Promise<number> {
    const withStdin = options.stdin !== undefined;
    const stream = (await container.attach({
      stream: true,
      stdout: true,
      stderr: true,
      stdin: withStdin,
      hijack: withStdin,
    })) as NodeJS.ReadWriteStream & { destroy(): void; end(): void };
    const decoder = new DockerStreamDemuxer((_stream, payload) =>
      options.onOutput?.(payload.toString("utf8")),
    );
    stream.on("data", (chunk: Buffer) => decoder.push(chunk));
    const finished = streamFinished(stream, 2 ** 31 - 1);
    const exited = container.wait({ condition: "next-exit" }) as Promise<{ StatusCode: number }>;
    // Awaited below; when `start` throws first, its rejection (the container is removed) must not go unhandled.
    exited.catch(() => undefined);
    await container.start();
    if (options.stdin) {
      options.stdin.on("data", (chunk) => stream.write(chunk));
      options.stdin.on("end", () => stream.end());
    }
    const timeoutMs = options.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      if (timeoutMs !== undefined) timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const aborted = new Promise<"aborted">((resolve) => {
      if (options.signal?.aborted) resolve("aborted");
      options.signal?.addEventListener("abort", () => resolve("aborted"), { once: true });
    });
    try {
      const outcome = await Promise.race([exited, timedOut, aborted]);
      if (outcome === "timeout" || outcome === "aborted") {
        await tolerate(container.kill(), [304, 404, 409]);
        stream.destroy();
        if (outcome === "aborted" && options.signal) throw abortError(options.signal);
        throw new BerthError(
          "RUN_TIMEOUT",
          `The command did not finish within ${(timeoutMs ?? 0) / 1000}s and was stopped.`,
        );
      }
      // Output still in flight arrives before the attach stream ends.
      await Promise.race([finished, sleep(5000)]);
      return outcome.StatusCode;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  async #waitUntilAnswering(app: string): Promise<void> {
    if (this.#readyTimeoutMs <= 0) return;
    const deadline = Date.now() + this.#readyTimeoutMs;
    const endpoints = (await this.status(app)).flatMap((instance) =>
      instance.running && instance.endpoint ? [instance.endpoint] : [],
    );
    await Promise.all(
      endpoints.map(async (endpoint) => {
        for (let delay = 20; ; delay = Math.min(Math.round(delay * 1.5), 250)) {
          if (await answers(endpoint)) return;
          if (Date.now() + delay > deadline) {
            throw new BerthError(
              "SCHEDULER_FAILED",
              `${app} did not answer on ${endpoint.host}:${endpoint.port} within ${this.#readyTimeoutMs / 1000}s after starting.`,
            );
          }
          await sleep(delay);
        }
      }),
    );
  }
}

/** Waits for `work`, or stops waiting (and calls `stop`) when the signal aborts. */
async function untilFinished(
  work: Promise<void>,
  signal: AbortSignal | undefined,
  stop: () => void,
): Promise<void> {
  if (!signal) return work;
  if (signal.aborted) return stop();
  const onAbort = () => stop();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await work;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** A loopback port nothing listens on right now (the kernel picks it from its ephemeral range). */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === "object" ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

async function tolerateMissing<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (error) {
    if (statusCode(error) === 404) return undefined;
    throw error;
  }
}

/** A container `start` event from the engine's event stream: which container, with which labels. */
function parseEvent(line: string): { id: string; labels: Record<string, string> } | undefined {
  try {
    const event = JSON.parse(line) as { id?: string; Actor?: { Attributes?: Record<string, string> } };
    return event.id ? { id: event.id, labels: event.Actor?.Attributes ?? {} } : undefined;
  } catch {
    return undefined;
  }
}

/** `2026-01-02T03:04:05.123456789Z` → `1767323045.123456789`, the form Docker's `since` takes. */
function unixSeconds(time: string): string {
  const match = /^(.*?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(time);
  const seconds = Math.floor(Date.parse(`${match?.[1] ?? time}${match?.[3] ?? ""}`) / 1000);
  return `${seconds}.${(match?.[2] ?? "").padEnd(9, "0").slice(0, 9)}`;
}

function definedTime(parts: { time: string | undefined; line: string }): { line: string; time?: string } {
  return parts.time === undefined ? { line: parts.line } : { line: parts.line, time: parts.time };
}

function readLogFrames(buffer: Buffer, source: string, onLine: (line: LogLine) => void): void {
  const splitters = new Map<string, LineSplitter>();
  const demuxer = new DockerStreamDemuxer((stream, payload) => {
    let splitter = splitters.get(stream);
    if (!splitter) {
      splitter = new LineSplitter((text) => onLine({ source, ...definedTime(splitTimestamp(text)) }));
      splitters.set(stream, splitter);
    }
    splitter.push(payload);
  });
  demuxer.push(buffer);
  for (const splitter of splitters.values()) splitter.flush();
}

/** Any HTTP answer counts: the process is listening (the engine's port proxy alone would reset the request). */
function answers(endpoint: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const outgoing = httpRequest(
      { host: endpoint.host, port: endpoint.port, path: "/", method: "GET", timeout: 2000, agent: false },
      (response) => {
        response.resume();
        resolve(true);
      },
    );
    outgoing.on("timeout", () => outgoing.destroy());
    outgoing.on("error", () => resolve(false));
    outgoing.end();
  });
}

function mountsOf(settings: DockerAppSettings): Docker.MountSettings[] {
  return settings.volumes.map((volume) => ({
    Type: volume.type,
    Source: volume.source,
    Target: volume.target,
    ReadOnly: volume.readOnly,
  }));
}

function stateOf(info: Docker.ContainerInspectInfo): InstanceState {
  const running = info.State.Running && !info.State.Restarting;
  return {
    running,
    restarts: info.RestartCount ?? 0,
    ...(info.State.StartedAt && !info.State.StartedAt.startsWith("0001")
      ? { startedAt: info.State.StartedAt }
      : {}),
    ...(running ? {} : { exitCode: info.State.ExitCode }),
  };
}

function endpointOf(info: Docker.ContainerInspectInfo): { endpoint?: Endpoint; containerPort?: number } {
  for (const [key, bindings] of Object.entries(info.NetworkSettings.Ports ?? {})) {
    const binding = bindings?.[0];
    if (!binding?.HostPort) continue;
    return {
      endpoint: { host: "127.0.0.1", port: Number(binding.HostPort) },
      containerPort: Number(key.split("/")[0]),
    };
  }
  return {};
}

function instanceOf(info: Docker.ContainerInspectInfo): Instance {
  const labels = info.Config.Labels ?? {};
  return {
    id: info.Id,
    processType: labels[LABELS.processType] ?? "",
    index: Number(labels[LABELS.index] ?? 0),
    ...endpointOf(info),
  };
}

function statusOf(info: Docker.ContainerInspectInfo): InstanceStatus {
  const labels = info.Config.Labels ?? {};
  return {
    ...instanceOf(info),
    ...stateOf(info),
    release: labels[LABELS.release] ?? "",
    deployment: labels[LABELS.deployment] ?? "",
  };
}

/** `berth/app:v3` → `berth/app` + `v3-predeploy`; image ids or digests get an app repository. */
function commitReference(app: string, release: Release): { repository: string; tag: string } {
  const image = release.artifact.image;
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  const repository =
    image.includes("@") || image.startsWith("sha256:")
      ? `berth/${app}`
      : colon > slash
        ? image.slice(0, colon)
        : image;
  return { repository, tag: `${release.id}-predeploy` };
}
