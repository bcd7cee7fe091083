import type {
  AppSettings,
  Artifact,
  Deployment,
  DeploymentRecord,
  Instance,
  InstanceState,
  InstanceStatus,
  Release,
  Source,
} from "./model.js";
import type { Output } from "./output.js";
import type { Platform } from "./platform.js";

/** A plugin is a class with a name and `apply(platform)`, tapping hooks under its own name. */
export interface BerthPlugin {
  readonly name: string;
  apply(platform: Platform): void;
}

/** What every pipeline hook receives: the app, where to write progress, and a signal to stop early. */
export interface OperationContext {
  platform: Platform;
  app: AppSettings;
  output: Output;
  signal: AbortSignal;
}

export interface ReceiveContext extends OperationContext {
  source: Source;
}

export interface BuildContext extends OperationContext {
  source: Source;
  /** The release number this build is for (for image tags and labels). */
  version: number;
  /** The builder the app selected, if any; when unset, the first builder whose detection claims the source builds. */
  builder: string | undefined;
  /** The app's current config; builders must only pass the names the user opted in as build args. */
  config: Readonly<Record<string, string>>;
}

export interface ReleaseContext extends OperationContext {
  source: Source | undefined;
  previous: Release | undefined;
}

export interface DeployContext extends OperationContext {
  release: Release;
  /** Unique id of the deployment to start; every instance must be findable by it (labels). */
  deploymentId: string;
  /** Instances to start per process type (types with 0 start none). */
  formation: Record<string, number>;
  /** The scheduler the app selected (or the platform default). Only that scheduler answers. */
  scheduler: string;
  /** The deployment serving now, which must not be touched. */
  previous: DeploymentRecord | undefined;
}

export interface CheckContext extends OperationContext {
  release: Release;
  deployment: Deployment;
  previous: DeploymentRecord | undefined;
}

export interface RouteContext extends OperationContext {
  release: Release;
  deployment: Deployment;
  /** The proxy the app selected (or the platform default). Only that proxy answers. */
  proxy: string;
}

export interface RetireContext extends OperationContext {
  release: Release;
  deployment: Deployment;
  previous: DeploymentRecord;
  scheduler: string;
}

export interface LogLine {
  /** `web.1` */
  source: string;
  line: string;
  time?: string;
}

export interface LogsOptions {
  processType?: string;
  tail?: number;
  follow?: boolean;
  signal?: AbortSignal;
}

export interface RunOptions {
  /** Extra environment over the release's config. */
  env?: Record<string, string>;
  /** Where the command's output goes, as it happens. */
  onOutput?: (chunk: string) => void;
  /** Data for the command's standard input. */
  stdin?: NodeJS.ReadableStream;
  signal?: AbortSignal;
  /** Stop and remove the one-off container after this long. */
  timeoutMs?: number;
}

export interface RunResult {
  exitCode: number;
}

export interface ExecResult {
  exitCode: number;
  output: string;
}

/** Builds artifacts from source. */
export interface Builder {
  readonly name: string;
  /** True when this builder can build the source without being selected. */
  detect(source: Source): Promise<boolean>;
  build(context: BuildContext): Promise<Artifact>;
}

/** Runs instances. `deploy` starts a new generation; nothing here may touch another app's instances. */
export interface Scheduler {
  readonly name: string;
  /** Start every instance of the formation; on failure remove what was started and throw. */
  deploy(context: DeployContext): Promise<Deployment>;
  /** Remove every instance of a deployment (idempotent; used when a deploy is abandoned). */
  discard(app: string, deploymentId: string): Promise<void>;
  /** Drain and stop the previous deployment after traffic moved. */
  retire(context: RetireContext): Promise<void>;
  instanceState(app: string, instance: Instance): Promise<InstanceState>;
  /** Live instances of the app (endpoints as the engine reports them now). */
  status(app: string): Promise<InstanceStatus[]>;
  stop(app: string): Promise<void>;
  start(app: string): Promise<void>;
  logs(app: string, options: LogsOptions, onLine: (line: LogLine) => void): Promise<void>;
  /** A one-off process of a release with its config; removed afterwards. */
  run(app: string, release: Release, command: string, options?: RunOptions): Promise<RunResult>;
  /** Run a command inside a live instance (health check `command`). */
  exec(
    app: string,
    instance: Instance,
    command: string[],
    options?: { timeoutMs?: number },
  ): Promise<ExecResult>;
  /** Remove every trace of the app (instances, artifacts). */
  removeApp(app: string): Promise<void>;
  /** Rebuild the view from live engine state: restart missing instances of the current deployment, remove leftovers. */
  reconcile?(
    app: string,
    deployment: DeploymentRecord | undefined,
    release: Release | undefined,
  ): Promise<void>;
  /** Remove artifacts of releases that are no longer kept. */
  pruneArtifacts?(app: string, keep: Release[], prune: Release[]): Promise<void>;
  /**
   * Run `command` in a one-off instance of the release's artifact and keep its filesystem changes as a new
   * artifact (app.json `scripts.dokku.predeploy`). Throws RELEASE_PHASE_FAILED on a non-zero exit.
   */
  commit?(app: string, release: Release, command: string, options?: RunOptions): Promise<Artifact>;
}

export interface ProxyStatus {
  routed: boolean;
  domains: string[];
  upstreams: Array<{ processType: string; host: string; port: number }>;
  urls: string[];
}

/** Routes traffic to an app's instances. */
export interface Proxy {
  readonly name: string;
  /** Point the app's traffic at the deployment's instances, before the previous ones are retired. */
  route(context: RouteContext): Promise<void>;
  /** Stop routing the app (destroy, stop). */
  removeApp(app: string): Promise<void>;
  status(app: string): Promise<ProxyStatus>;
}

/** The spec of one instance before a scheduler creates it; `instanceSpec` taps may add to it. */
export interface InstanceSpec {
  app: string;
  release: string;
  deploymentId: string;
  processType: string;
  index: number;
  command: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** The port the process listens on, for types that get one. */
  port: number | undefined;
}
