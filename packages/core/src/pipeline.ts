import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseAppJson } from "./app-json.js";
import { BerthError, describeError, isBerthError } from "./errors.js";
import type {
  AppJson,
  AppSettings,
  Artifact,
  Deployment,
  DeploymentRecord,
  Release,
  Source,
} from "./model.js";
import type { Output } from "./output.js";
import type { Platform } from "./platform.js";
import type { OperationContext } from "./plugin.js";
import { parseProcfile } from "./procfile.js";

/**
 * The deploy pipeline, in one place:
 *
 *   receive → build → release → deploy → checkDeploy → route → retire
 *
 * Everything before `route` is reversible: a failure removes every new instance, settles the release as
 * failed, and leaves the previous deployment serving untouched. Callers hold the app lock.
 */

export interface PipelineRun {
  output: Output;
  signal: AbortSignal;
}

/** How a new release differs from the previous one. */
export interface ReleaseChange {
  description: string;
  source: Release["source"];
  artifact: Artifact;
  config: Record<string, string>;
  processTypes: Record<string, string>;
  appJson: AppJson;
}

/** Source files the pipeline reads itself, before building, so bad input fails before any work. */
interface SourceManifest {
  procfile: Record<string, string> | undefined;
  appJson: AppJson;
}

export async function readSourceManifest(dir: string): Promise<SourceManifest> {
  const procfileText = await readOptional(join(dir, "Procfile"));
  const appJsonText = await readOptional(join(dir, "app.json"));
  return {
    procfile: procfileText === undefined ? undefined : parseProcfile(procfileText),
    appJson: appJsonText === undefined ? {} : parseAppJson(appJsonText),
  };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw error;
  }
}

/**
 * Applies app.json `env` to the app's config: defaults for unset vars, `secret` generators filled once,
 * and required vars checked. Returns the config and the values it generated (to store after success).
 */
export function resolveAppJsonEnv(
  app: string,
  appJson: AppJson,
  config: Record<string, string>,
): { config: Record<string, string>; generated: Record<string, string> } {
  const resolved = { ...config };
  const generated: Record<string, string> = {};
  const missing: string[] = [];
  for (const [key, spec] of Object.entries(appJson.env ?? {})) {
    if (resolved[key] !== undefined) continue;
    if (spec.generator === "secret") {
      generated[key] = randomBytes(32).toString("hex");
      resolved[key] = generated[key];
    } else if (spec.value !== undefined) {
      resolved[key] = spec.value;
    } else if (spec.required) {
      missing.push(key);
    }
  }
  if (missing.length > 0) {
    throw new BerthError(
      "CONFIG_REQUIRED_MISSING",
      `app.json requires ${missing.join(", ")}, which ${missing.length === 1 ? "is" : "are"} not set. Set ${missing.length === 1 ? "it" : "them"} with config:set ${app} ${missing.map((key) => `${key}=…`).join(" ")}.`,
      { details: { app, missing } },
    );
  }
  return { config: resolved, generated };
}

/** How many instances of each process type run: the user's scale, else app.json formation, else web=1 and others 0. */
export function resolveFormation(release: Release, scale: Record<string, number>): Record<string, number> {
  const formation: Record<string, number> = {};
  for (const type of Object.keys(release.processTypes)) {
    if (type === "release") continue;
    formation[type] = scale[type] ?? release.appJson.formation?.[type]?.quantity ?? (type === "web" ? 1 : 0);
  }
  return formation;
}

/** The environment an instance of the release runs with (before the scheduler adds PORT and DYNO). */
export function releaseEnvironment(release: Release): Record<string, string> {
  return { ...(release.artifact.configDefaults ?? {}), ...release.config };
}

function newDeploymentId(release: Release): string {
  return `${release.id}-${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

export class Pipeline {
  readonly #platform: Platform;

  constructor(platform: Platform) {
    this.#platform = platform;
  }

  #context(app: AppSettings, run: PipelineRun): OperationContext {
    return { platform: this.#platform, app, output: run.output, signal: run.signal };
  }

  /** receive → build → release, then the rollout. Returns the new, current release. */
  async deploySource(app: AppSettings, source: Source, run: PipelineRun): Promise<Release> {
    const platform = this.#platform;
    const started = Date.now();
    const info = await stat(source.dir).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new BerthError("INVALID_SOURCE", `Source directory ${source.dir} does not exist.`, {
        details: { dir: source.dir },
      });
    }
    platform.events.emit("deploy.started", app.name, { rev: source.rev, kind: source.kind });
    const context = this.#context(app, run);
    await platform.hooks.receive.promise({ ...context, source });
    const manifest = await readSourceManifest(source.dir);
    const userConfig = await platform.store.readEnv(app.name);
    const resolved = resolveAppJsonEnv(app.name, manifest.appJson, userConfig);
    const version = (await this.#lastVersion(app.name)) + 1;

    const artifact = await platform.hooks.build.promise({
      ...context,
      source,
      version,
      builder: app.builder ?? platform.defaults.builder,
      config: resolved.config,
    });
    if (!artifact) {
      const builders = [...platform.builders.keys()];
      throw new BerthError(
        "NO_BUILDER",
        app.builder
          ? `Builder ${app.builder} selected for ${app.name} is not installed (installed: ${builders.join(", ") || "none"}).`
          : `No builder can build this source (tried: ${builders.join(", ") || "none installed"}). Add a Dockerfile, or select a builder.`,
        { details: { app: app.name, builders } },
      );
    }
    platform.events.emit("build.succeeded", app.name, { version, image: artifact.image });
    return this.#deployBuilt(app, artifact, manifest, resolved, run, {
      started,
      version,
      source,
      description: source.rev ? `Deploy ${source.rev.slice(0, 7)}` : "Deploy",
      origin: { kind: source.kind, ...(source.rev ? { rev: source.rev } : {}) },
    });
  }

  /** Deploy an artifact that needs no build (an existing image): release, release phase, rollout. */
  async deployArtifact(
    app: AppSettings,
    artifact: Artifact,
    run: PipelineRun,
    description: string,
  ): Promise<Release> {
    const started = Date.now();
    this.#platform.events.emit("deploy.started", app.name, { kind: "image", image: artifact.image });
    const manifest: SourceManifest = {
      procfile: artifact.procfile ? parseProcfile(artifact.procfile) : undefined,
      appJson: artifact.appJson ? parseAppJson(artifact.appJson) : {},
    };
    const resolved = resolveAppJsonEnv(
      app.name,
      manifest.appJson,
      await this.#platform.store.readEnv(app.name),
    );
    return this.#deployBuilt(app, artifact, manifest, resolved, run, {
      started,
      version: (await this.#lastVersion(app.name)) + 1,
      source: undefined,
      description,
      origin: { kind: "image", from: artifact.image },
    });
  }

  async #deployBuilt(
    app: AppSettings,
    built: Artifact,
    manifest: SourceManifest,
    resolved: { config: Record<string, string>; generated: Record<string, string> },
    run: PipelineRun,
    facts: {
      started: number;
      version: number;
      source: Source | undefined;
      description: string;
      origin: Release["source"];
    },
  ): Promise<Release> {
    const platform = this.#platform;
    const procfile = manifest.procfile ?? (built.procfile ? parseProcfile(built.procfile) : undefined);
    const appJson =
      Object.keys(manifest.appJson).length > 0 || !built.appJson
        ? manifest.appJson
        : parseAppJson(built.appJson);
    let release = await this.#shapeRelease(
      app,
      {
        description: facts.description,
        source: facts.origin,
        artifact: built,
        config: resolved.config,
        processTypes: { ...(built.defaultProcessTypes ?? {}), ...(procfile ?? {}) },
        appJson,
      },
      { ...run, source: facts.source, version: facts.version },
    );
    const predeploy = appJson.scripts?.dokku?.predeploy;
    if (predeploy) {
      // Predeploy changes become part of the release's artifact, so they run before the release is stored.
      const scheduler = platform.schedulerFor(app);
      if (!scheduler.commit) {
        throw new BerthError(
          "NOT_SUPPORTED",
          `Scheduler ${scheduler.name} cannot run app.json predeploy scripts.`,
        );
      }
      run.output.step(`Running predeploy: ${predeploy}`);
      const artifact = await scheduler.commit(app.name, release, predeploy, {
        onOutput: (chunk) => run.output.stream(chunk),
        signal: run.signal,
      });
      run.output.flush();
      release = { ...release, artifact };
    }
    await platform.store.createRelease(release);
    platform.events.emit("release.created", app.name, {
      release: release.id,
      description: release.description,
    });
    await this.#releasePhase(app, release, run);
    const deployed = await this.rollout(app, release, run);
    if (Object.keys(resolved.generated).length > 0) {
      // Generated secrets become the app's own config only once a release using them succeeded.
      await platform.store.writeEnv(app.name, {
        ...(await platform.store.readEnv(app.name)),
        ...resolved.generated,
      });
    }
    await this.#postdeploy(app, deployed, run);
    run.output.step(
      `Done: ${app.name} ${deployed.id} deployed in ${((Date.now() - facts.started) / 1000).toFixed(1)}s`,
    );
    return deployed;
  }

  /** Procfile `release:` runs once, in a one-off instance of the new release, before any new instance starts. */
  async #releasePhase(app: AppSettings, release: Release, run: PipelineRun): Promise<void> {
    const command = release.processTypes.release;
    if (!command) return;
    const platform = this.#platform;
    run.output.step(`Running release command: ${command}`);
    let failure: BerthError | undefined;
    try {
      const result = await platform.schedulerFor(app).run(app.name, release, command, {
        onOutput: (chunk) => run.output.stream(chunk),
        signal: run.signal,
      });
      if (result.exitCode !== 0) {
        failure = new BerthError(
          "RELEASE_PHASE_FAILED",
          `The release command of ${release.id} exited with code ${result.exitCode}; nothing was deployed.`,
          { details: { app: app.name, release: release.id, exitCode: result.exitCode } },
        );
      }
    } catch (error) {
      failure = isBerthError(error)
        ? error
        : new BerthError(
            "RELEASE_PHASE_FAILED",
            `The release command of ${release.id} could not run: ${describeError(error)}`,
            {
              cause: error,
            },
          );
    } finally {
      run.output.flush();
    }
    if (!failure) return;
    run.output.warn(failure.message);
    await platform.store.settleRelease(app.name, release.version, "failed", {
      code: failure.code,
      message: failure.message,
    });
    await platform.hooks.deployFailed.promise({
      ...this.#context(app, run),
      error: failure,
      release,
      deployment: undefined,
    });
    platform.events.emit("deploy.failed", app.name, {
      release: release.id,
      code: failure.code,
      message: failure.message,
    });
    throw failure;
  }

  /**
   * app.json `scripts.dokku.postdeploy` after every deploy and `scripts.postdeploy` after the first one, in
   * one-off instances of the new release. Traffic has already moved, so a failure is reported, not undone.
   */
  async #postdeploy(app: AppSettings, release: Release, run: PipelineRun): Promise<void> {
    const platform = this.#platform;
    const state = await platform.store.readState(app.name);
    const scripts: Array<[string, string]> = [];
    if (release.appJson.scripts?.dokku?.postdeploy)
      scripts.push(["postdeploy", release.appJson.scripts.dokku.postdeploy]);
    if (release.appJson.scripts?.postdeploy && !state.postdeployDone) {
      scripts.push(["first-deploy postdeploy", release.appJson.scripts.postdeploy]);
    }
    for (const [label, command] of scripts) {
      run.output.step(`Running ${label}: ${command}`);
      const result = await platform
        .schedulerFor(app)
        .run(app.name, release, command, {
          onOutput: (chunk) => run.output.stream(chunk),
          signal: run.signal,
        })
        .catch((error: unknown) => ({ exitCode: -1, error }));
      run.output.flush();
      if (label.startsWith("first")) {
        await platform.store.writeState(app.name, {
          ...(await platform.store.readState(app.name)),
          postdeployDone: true,
        });
      }
      if (result.exitCode !== 0) {
        run.output.warn(`${label} exited with code ${result.exitCode}; ${release.id} is serving regardless.`);
        platform.events.emit("postdeploy.failed", app.name, {
          release: release.id,
          script: label,
          exitCode: result.exitCode,
        });
      }
    }
  }

  /** Creates a pending release through the `release` waterfall, stores it, and runs its release phase. */
  async createRelease(app: AppSettings, change: ReleaseChange, run: PipelineRun): Promise<Release> {
    const release = await this.#shapeRelease(app, change, run);
    await this.#platform.store.createRelease(release);
    this.#platform.events.emit("release.created", app.name, {
      release: release.id,
      description: release.description,
    });
    return release;
  }

  /** Like `createRelease`, then the release phase (config changes run it too, as on Heroku). */
  async createReleaseWithPhase(app: AppSettings, change: ReleaseChange, run: PipelineRun): Promise<Release> {
    const release = await this.createRelease(app, change, run);
    await this.#releasePhase(app, release, run);
    return release;
  }

  async #shapeRelease(
    app: AppSettings,
    change: ReleaseChange,
    run: PipelineRun & { source?: Source; previous?: Release; version?: number },
  ): Promise<Release> {
    const platform = this.#platform;
    const version = run.version ?? (await this.#lastVersion(app.name)) + 1;
    const base: Release = {
      app: app.name,
      version,
      id: `v${version}`,
      status: "pending",
      createdAt: new Date().toISOString(),
      description: change.description,
      artifact: change.artifact,
      config: change.config,
      processTypes: change.processTypes,
      appJson: change.appJson,
      source: change.source,
    };
    const release = await platform.hooks.release.promise(base, {
      ...this.#context(app, run),
      source: run.source,
      previous: run.previous ?? (await this.currentRelease(app.name)),
    });
    if (release.version !== version || release.app !== app.name || release.status !== "pending") {
      throw new BerthError(
        "INVALID_RELEASE",
        "A release tap changed the release's identity; taps may only add to it.",
      );
    }
    if (Object.keys(release.processTypes).length === 0) {
      throw new BerthError(
        "INVALID_RELEASE",
        `Release ${release.id} of ${app.name} has no process types: add a Procfile, or a CMD to the Dockerfile.`,
        { details: { app: app.name } },
      );
    }
    return release;
  }

  /**
   * deploy → checkDeploy → route → retire for a release (new or current). A new (pending) release settles as
   * succeeded or failed here.
   */
  async rollout(
    app: AppSettings,
    release: Release,
    run: PipelineRun,
    formation: Record<string, number> = resolveFormation(release, app.scale),
  ): Promise<Release> {
    const platform = this.#platform;
    const { output } = run;
    const schedulerName = app.scheduler ?? platform.defaults.scheduler;
    const scheduler = platform.scheduler(schedulerName);
    const proxyName = app.proxy ?? platform.defaults.proxy;
    const state = await platform.store.readState(app.name);
    const previous = state.deployment;
    const deploymentId = newDeploymentId(release);
    const context = this.#context(app, run);
    let deployment: Deployment | undefined;
    const summary = Object.entries(formation)
      .map(([type, count]) => `${type}=${count}`)
      .join(" ");
    try {
      output.step(`Starting ${release.id} (${summary || "no processes"})`);
      deployment = await platform.hooks.deploy.promise({
        ...context,
        release,
        deploymentId,
        formation,
        scheduler: schedulerName,
        previous,
      });
      if (!deployment) {
        throw new BerthError(
          "PLUGIN_NOT_FOUND",
          `Scheduler ${schedulerName} did not answer the deploy hook.`,
        );
      }
      output.step("Checking new instances");
      await platform.hooks.checkDeploy.promise({ ...context, release, deployment, previous });
      if (proxyName) {
        platform.proxy(proxyName);
        output.step("Switching traffic");
        await platform.hooks.route.promise({ ...context, release, deployment, proxy: proxyName });
      }
    } catch (error) {
      output.warn(`Deploy of ${release.id} failed: ${describeError(error)}`);
      output.warn(
        previous
          ? `${state.currentRelease ?? "The previous release"} is still serving.`
          : "Nothing was switched.",
      );
      try {
        await scheduler.discard(app.name, deploymentId);
      } catch (discardError) {
        output.warn(`Could not remove every new instance (${describeError(discardError)}); reconcile will.`);
      }
      const failure = isBerthError(error)
        ? error
        : new BerthError(
            "DEPLOY_FAILED",
            `Deploy of ${app.name} ${release.id} failed: ${describeError(error)}`,
            {
              cause: error,
            },
          );
      if (release.status === "pending") {
        await platform.store.settleRelease(app.name, release.version, "failed", {
          code: failure.code,
          message: failure.message,
        });
      }
      await platform.hooks.deployFailed.promise({ ...context, error: failure, release, deployment });
      platform.events.emit("deploy.failed", app.name, {
        release: release.id,
        code: failure.code,
        message: failure.message,
      });
      throw failure;
    }

    const record: DeploymentRecord = {
      id: deployment.id,
      release: release.id,
      formation,
      scheduler: schedulerName,
      createdAt: deployment.createdAt,
    };
    const first = !state.firstDeployDone;
    await platform.store.writeState(app.name, {
      ...state,
      currentRelease: release.id,
      deployment: record,
      firstDeployDone: true,
      stopped: false,
    });
    const settled =
      release.status === "pending"
        ? await platform.store.settleRelease(app.name, release.version, "succeeded")
        : release;
    platform.events.emit("deploy.succeeded", app.name, {
      release: release.id,
      deployment: deployment.id,
      formation,
    });
    if (previous) {
      output.step(`Retiring ${previous.release} instances`);
      try {
        await platform.hooks.retire.promise({
          ...context,
          release: settled,
          deployment,
          previous,
          scheduler: schedulerName,
        });
      } catch (error) {
        // Traffic already moved: a retire failure leaves old instances idle, which reconcile removes.
        output.warn(`Could not retire every previous instance: ${describeError(error)}`);
      }
    }
    await this.#prune(app, run);
    await platform.hooks.deployed.promise({ ...context, release: settled, deployment, first });
    return settled;
  }

  async currentRelease(app: string): Promise<Release | undefined> {
    const state = await this.#platform.store.readState(app);
    if (!state.currentRelease) return undefined;
    return this.#platform.store.readRelease(app, Number(state.currentRelease.slice(1)));
  }

  async #lastVersion(app: string): Promise<number> {
    const releases = await this.#platform.store.listReleases(app);
    return releases[releases.length - 1]?.version ?? 0;
  }

  async #prune(app: AppSettings, run: PipelineRun): Promise<void> {
    const platform = this.#platform;
    const releases = (await platform.store.listReleases(app.name)).filter(
      (release) => release.status === "succeeded",
    );
    const keep = releases.slice(-platform.keepReleases);
    const prune = releases.slice(0, -platform.keepReleases);
    if (prune.length === 0) return;
    try {
      await platform.hooks.pruneReleases.promise({ app, keep, prune });
    } catch (error) {
      run.output.warn(`Could not prune old artifacts: ${describeError(error)}`);
    }
  }
}
