/**
 * The data Berth keeps about apps, releases and running deployments. Everything here is plain JSON so a
 * `Store` can persist it as is.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** `scheme:host-port:container-port`, Dokku's port mapping. */
export interface PortMapping {
  scheme: "http" | "https";
  hostPort: number;
  containerPort: number;
}

export interface CheckSettings {
  /** Process types whose checks are off entirely (`_all_` for every type): instances count as healthy at once. */
  disabled: string[];
  /** Process types whose configured checks are skipped; the default uptime wait still applies. */
  skipped: string[];
}

/** `<data>/apps/<app>/app.json`: what the user chose for an app. */
export interface AppSettings {
  name: string;
  createdAt: string;
  /** Selected plugins by name; unset means the platform default (or detection, for builders). */
  builder?: string;
  scheduler?: string;
  proxy?: string;
  /** The branch whose pushes deploy; unset means `main` (or `master` when the repo has no `main`). */
  deployBranch?: string;
  domains: string[];
  /** Explicit port mappings; empty means the proxy derives them from the release. */
  ports: PortMapping[];
  /** Scale chosen by the user; process types not listed fall back to app.json formation, then defaults. */
  scale: Record<string, number>;
  checks: CheckSettings;
  /** Settings owned by plugins, one object per plugin name (build args, buildpacks, limits, nginx tuning). */
  plugins: Record<string, Record<string, JsonValue>>;
}

/** `<data>/apps/<app>/state.json`: what is running now. Written only by the pipeline. */
export interface AppState {
  /** The release that serves traffic, e.g. `v4`. */
  currentRelease?: string;
  /** The deployment whose instances serve traffic. */
  deployment?: DeploymentRecord;
  /** True once a deploy has succeeded. */
  firstDeployDone?: boolean;
  /** True once app.json `scripts.postdeploy` (first deploy only) has run. */
  postdeployDone?: boolean;
  /** Set by `ps.stop`; a stopped app is not restarted by reconcile. */
  stopped?: boolean;
}

/** What a builder produced: something a scheduler can run. */
export interface Artifact {
  /** The builder that produced it (`dockerfile`, `herokuish`, `image`, `fake`). */
  builder: string;
  /** Image reference (or any scheduler-understood identifier). */
  image: string;
  /** Ports the artifact declares (Dockerfile EXPOSE), first one is the web port. */
  ports?: number[];
  /** Process types the artifact brings when there is no Procfile (`CMD`, buildpack `default_process_types`). */
  defaultProcessTypes?: Record<string, string>;
  /** Config vars the builder adds under the app's own (buildpack `config_vars`). */
  configDefaults?: Record<string, string>;
  /** Procfile found in the source, if any, verbatim. */
  procfile?: string;
  /** app.json found in the source, if any, verbatim. */
  appJson?: string;
  /**
   * How a scheduler starts a process of this artifact: `shell` (default) runs `sh -c "<command>"` after the
   * image's ENTRYPOINT; `start` runs `/start <process type>` (buildpack images, whose /start reads the Procfile).
   */
  launcher?: "shell" | "start";
  /**
   * The process type whose default command is the image's own CMD/ENTRYPOINT (Dockerfile without Procfile):
   * while the release keeps that default, schedulers run the image without overriding its command.
   */
  imageDefaultProcess?: string;
  /** Builder-specific facts (image id, build duration, stack). */
  metadata?: Record<string, JsonValue>;
}

export type ReleaseStatus = "pending" | "succeeded" | "failed";

/** `<data>/apps/<app>/releases/vN.json`: immutable once settled (pending → succeeded | failed, exactly once). */
export interface Release {
  app: string;
  version: number;
  /** `v${version}` */
  id: string;
  status: ReleaseStatus;
  createdAt: string;
  /** Why the release exists: `Deploy 1a2b3c4`, `Set GREETING`, `Rollback to v2`. */
  description: string;
  artifact: Artifact;
  /** The config the release runs with (app config over builder defaults), snapshotted. */
  config: Record<string, string>;
  /** Process type → command. `release` is the release-phase command, never scaled. */
  processTypes: Record<string, string>;
  /** Parsed app.json (Dokku's format), or an empty object. */
  appJson: AppJson;
  source: { kind: "git" | "dir" | "image" | "rollback" | "config"; rev?: string; from?: string };
  /** When settled as failed: why. */
  failure?: { code: string; message: string };
  settledAt?: string;
}

export interface Endpoint {
  host: string;
  port: number;
}

/** One running process: a container for the Docker scheduler. */
export interface Instance {
  id: string;
  processType: string;
  index: number;
  /** Where the instance answers HTTP, for `web` (and any type with a port). */
  endpoint?: Endpoint;
  containerPort?: number;
}

/** Persisted summary of a deployment; endpoints are live facts and are asked from the scheduler. */
export interface DeploymentRecord {
  id: string;
  release: string;
  formation: Record<string, number>;
  scheduler: string;
  createdAt: string;
}

/** A set of new instances of one release, started by a scheduler. */
export interface Deployment extends DeploymentRecord {
  app: string;
  instances: Instance[];
}

export interface InstanceState {
  running: boolean;
  /** How many times the engine restarted it. */
  restarts: number;
  startedAt?: string;
  exitCode?: number;
}

export interface InstanceStatus extends Instance, InstanceState {
  release: string;
  deployment: string;
}

/** Source handed to the pipeline: a directory the caller owns and cleans up. */
export interface Source {
  kind: "git" | "dir";
  dir: string;
  rev?: string;
  /** The ref that was pushed, for git sources. */
  ref?: string;
}

// --- app.json (Dokku's format) ---

export interface HealthCheck {
  type: "startup" | "liveness" | "readiness";
  name?: string;
  path?: string;
  content?: string;
  attempts: number;
  wait: number;
  timeout: number;
  initialDelay: number;
  uptime?: number;
  command?: string[];
  port?: number;
  scheme?: "http" | "https";
  listening?: boolean;
}

export interface CronEntry {
  schedule: string;
  command: string;
}

export interface EnvSpec {
  description?: string;
  value?: string;
  required: boolean;
  generator?: "secret";
}

export interface AppJson {
  name?: string;
  scripts?: { dokku?: { predeploy?: string; postdeploy?: string }; postdeploy?: string };
  formation?: Record<string, { quantity?: number; maxParallel?: number }>;
  env?: Record<string, EnvSpec>;
  healthchecks?: Record<string, HealthCheck[]>;
  cron?: CronEntry[];
}
