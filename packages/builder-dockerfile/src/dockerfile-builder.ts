import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type AppSettings,
  type Artifact,
  BerthError,
  type BuildContext,
  type Builder,
  describeError,
  type Output,
  type Release,
  type Source,
  validateAppName,
} from "@berth/core";
import Docker from "dockerode";
import { createContextArchive } from "./build-context.js";
import { BuildProgress } from "./build-progress.js";
import { baseImages, exposeWords, parseInstructions } from "./dockerfile.js";
import { exposedPorts, renderDefaultCommand } from "./image-facts.js";
import { DEFAULT_DOCKERFILE_PATH, readDockerfileSettings } from "./settings.js";

export interface DockerfileBuilderOptions {
  /** The engine client to use; by default one is made for `socketPath` or the environment (`DOCKER_HOST`). */
  docker?: Docker;
  /** The engine's socket, e.g. `/var/run/docker.sock`; ignored when `docker` is given. */
  socketPath?: string;
  /**
   * Let the engine pull base images it does not have. Off by default: Berth hosts build their base images
   * locally, and a missing one then fails fast with a clear error instead of reaching for a registry.
   */
  pullBaseImages?: boolean;
}

/** The repository every image of an app is tagged in: `berth/<app>:v<version>`. */
export function imageRepository(app: string): string {
  return `berth/${validateAppName(app)}`;
}

// A rev becomes an image label; anything beyond a ref-like name is left out rather than escaped.
const LABEL_SAFE_REV = /^[A-Za-z0-9._/-]{1,200}$/;

interface EngineError {
  statusCode?: number;
  json?: { message?: string } | null;
  message?: string;
}

function engineMessage(error: unknown): string {
  const engine = error as EngineError;
  return (engine?.json?.message ?? describeError(error)).trim();
}

function hasStatus(error: unknown, ...codes: number[]): boolean {
  const status = (error as EngineError)?.statusCode;
  return status !== undefined && codes.includes(status);
}

/**
 * Builds app images from a Dockerfile with the engine's classic builder: the source (minus
 * `.dockerignore`) is the context, the image is `berth/<app>:v<version>` with `berth.*` labels, and the
 * image's EXPOSE and CMD/ENTRYPOINT become the release's default port and `web` process.
 */
export class DockerfileBuilder implements Builder {
  readonly name = "dockerfile";
  readonly docker: Docker;
  readonly #pullBaseImages: boolean;

  constructor(options: DockerfileBuilderOptions = {}) {
    this.#pullBaseImages = options.pullBaseImages ?? false;
    this.docker =
      options.docker ??
      new Docker(options.socketPath === undefined ? undefined : { socketPath: options.socketPath });
  }

  /** True when the source has a Dockerfile where the app's settings say (default `Dockerfile`). */
  async detect(source: Source, app?: Pick<AppSettings, "plugins">): Promise<boolean> {
    const { dockerfilePath } = readDockerfileSettings(app);
    const found = await stat(join(source.dir, dockerfilePath)).catch(() => undefined);
    return found?.isFile() ?? false;
  }

  async build(context: BuildContext): Promise<Artifact> {
    const { app, source, output, version, signal } = context;
    const settings = readDockerfileSettings(app);
    const tag = `${imageRepository(app.name)}:v${version}`;
    const started = Date.now();
    output.step(`Building ${app.name} from Dockerfile`);
    if (settings.dockerfilePath !== DEFAULT_DOCKERFILE_PATH)
      output.detail(`Using ${settings.dockerfilePath}`);

    if (!(await this.detect(source, app))) {
      throw new BerthError(
        "INVALID_SOURCE",
        `No Dockerfile at ${settings.dockerfilePath} in the source of ${app.name}. Add one, or set the ` +
          `builder-dockerfile dockerfilePath setting to where it is.`,
        { details: { app: app.name, dockerfilePath: settings.dockerfilePath } },
      );
    }
    // Symlinks and special files are refused here, before anything reaches the engine.
    const archive = await createContextArchive(source.dir, settings.dockerfilePath);
    const dockerfile = await readFile(join(source.dir, settings.dockerfilePath), "utf8");
    if (/^#\s*syntax\s*=/im.test(dockerfile.split("\n").slice(0, 5).join("\n"))) {
      output.warn("The # syntax= directive needs BuildKit; the classic builder used here ignores it.");
    }
    const instructions = parseInstructions(dockerfile);
    if (!this.#pullBaseImages) await this.#assertBaseImagesPresent(app.name, baseImages(instructions));

    const labels: Record<string, string> = { "berth.app": app.name, "berth.release": `v${version}` };
    if (source.rev !== undefined && LABEL_SAFE_REV.test(source.rev)) labels["berth.rev"] = source.rev;

    const buildargs: Record<string, string> = {};
    for (const name of settings.buildArgs) {
      const value = context.config[name];
      if (value === undefined)
        output.warn(`Build arg ${name} is not set in the config of ${app.name}; not passed.`);
      else buildargs[name] = value;
    }
    // Names only: values are config and often secret.
    if (Object.keys(buildargs).length > 0) output.detail(`Build args: ${Object.keys(buildargs).join(", ")}`);

    const progress = new BuildProgress(output);
    try {
      const response = (await this.docker.buildImage(archive.pack(), {
        t: tag,
        dockerfile: settings.dockerfilePath,
        labels,
        buildargs,
        rm: true,
        // Intermediate containers go even when a step fails.
        forcerm: true,
        pull: false,
        version: "1",
        abortSignal: signal,
      })) as NodeJS.ReadableStream;
      for await (const chunk of response) progress.write(chunk as Buffer);
    } catch (error) {
      progress.end();
      await this.#cleanUpFailedBuild(progress, output);
      if (signal.aborted) {
        throw new BerthError("BUILD_FAILED", `The build of ${app.name} was cancelled.`, {
          cause: error,
          details: { app: app.name },
        });
      }
      throw new BerthError(
        "BUILD_FAILED",
        `The Docker engine refused the build of ${app.name}: ${engineMessage(error)}. Check that dockerd is ` +
          `running and the Dockerfile is valid, then deploy again.`,
        { cause: error, details: { app: app.name } },
      );
    }
    progress.end();

    if (signal.aborted) {
      await this.#cleanUpFailedBuild(progress, output);
      throw new BerthError("BUILD_FAILED", `The build of ${app.name} was cancelled.`, {
        details: { app: app.name },
      });
    }
    if (progress.error !== undefined) {
      await this.#cleanUpFailedBuild(progress, output);
      const step = progress.currentStep ?? "the start of the build";
      throw new BerthError(
        "BUILD_FAILED",
        `The build of ${app.name} failed at ${step}: ${progress.error}. Fix the Dockerfile and deploy again.`,
        { details: { app: app.name, step: progress.currentStep ?? null, engineError: progress.error } },
      );
    }

    const image = this.docker.getImage(tag);
    const [inspection, history] = await Promise.all([image.inspect(), image.history()]).catch(
      (error: unknown) => {
        throw new BerthError(
          "BUILD_FAILED",
          `The build of ${app.name} finished but its image ${tag} cannot be read: ${engineMessage(error)}.`,
          { cause: error, details: { app: app.name, image: tag } },
        );
      },
    );
    const ports = exposedPorts(
      inspection.Config?.ExposedPorts,
      [...(history as Array<{ CreatedBy?: string }>)].reverse(),
      exposeWords(instructions),
    );
    const web = renderDefaultCommand(inspection.Config?.Entrypoint, inspection.Config?.Cmd);
    const seconds = (Date.now() - started) / 1000;
    output.detail(
      `Built ${tag} in ${seconds.toFixed(1)}s` +
        (ports.length > 0 ? `, exposes ${ports.join(", ")}` : "") +
        (web === undefined ? "" : `, default web: ${web}`),
    );

    return {
      builder: this.name,
      image: tag,
      ...(ports.length > 0 ? { ports } : {}),
      // Without a Procfile the image's own CMD/ENTRYPOINT is `web`; schedulers then run the image unchanged.
      ...(web === undefined ? {} : { defaultProcessTypes: { web }, imageDefaultProcess: "web" }),
      launcher: "shell",
      metadata: {
        imageId: inspection.Id,
        dockerfile: settings.dockerfilePath,
        buildSeconds: Math.round(seconds * 10) / 10,
        cached: progress.usedCache,
        ...(labels["berth.rev"] === undefined ? {} : { rev: labels["berth.rev"] }),
      },
    };
  }

  /**
   * Removes the images of pruned releases that no kept release still uses. Images a container still
   * uses (a stopped instance, a one-off) are left for a later prune. Returns the references removed.
   */
  async pruneImages(app: string, keep: Release[], prune: Release[]): Promise<string[]> {
    const repository = `${imageRepository(app)}:`;
    const kept = new Set(keep.map((release) => release.artifact.image));
    const doomed = new Set(
      prune
        .filter((release) => release.artifact.builder === this.name)
        .map((release) => release.artifact.image)
        .filter((image) => image.startsWith(repository) && !kept.has(image)),
    );
    const removed: string[] = [];
    for (const image of doomed) {
      if (await this.#removeImage(image)) removed.push(image);
    }
    return removed;
  }

  /** Removes every image this builder tagged for the app (label `berth.app=<app>`). Returns what it removed. */
  async removeAppImages(app: string): Promise<{ removed: string[]; inUse: string[] }> {
    const repository = `${imageRepository(app)}:`;
    const images = await this.docker.listImages({ filters: { label: [`berth.app=${app}`] } });
    const removed: string[] = [];
    const inUse: string[] = [];
    for (const image of images) {
      const tags = (image.RepoTags ?? []).filter((tag) => tag !== "<none>:<none>");
      // Tags someone else added stay, and keep the image with them.
      const references = tags.length === 0 ? [image.Id] : tags.filter((tag) => tag.startsWith(repository));
      for (const reference of references) {
        if (await this.#removeImage(reference)) removed.push(reference);
        else inUse.push(reference);
      }
    }
    return { removed, inUse };
  }

  /** True when removed; false when already gone or still used by a container or a child image. */
  async #removeImage(reference: string): Promise<boolean> {
    try {
      await this.docker.getImage(reference).remove();
      return true;
    } catch (error) {
      if (hasStatus(error, 404, 409)) return false;
      throw new BerthError(
        "IMAGE_REMOVE_FAILED",
        `Could not remove image ${reference}: ${engineMessage(error)}`,
        {
          cause: error,
          details: { image: reference },
        },
      );
    }
  }

  /** Without pulls, a base image the engine lacks would only fail after a registry lookup: fail first. */
  async #assertBaseImagesPresent(app: string, images: string[]): Promise<void> {
    for (const image of images) {
      try {
        await this.docker.getImage(image).inspect();
      } catch (error) {
        if (!hasStatus(error, 404)) throw error;
        throw new BerthError(
          "BUILD_FAILED",
          `The base image ${image} of ${app}'s Dockerfile is not on the Docker engine, and Berth does not pull ` +
            `it. Build or load it on the engine first, or create the builder with pullBaseImages: true.`,
          { details: { app, image } },
        );
      }
    }
  }

  /**
   * After a failed or cancelled build: its step container (a cancelled build may still be running one; the
   * engine's own `forcerm` comes too late for the images below), then the images its finished steps
   * committed, newest first so each is a leaf.
   */
  async #cleanUpFailedBuild(progress: BuildProgress, output: Output): Promise<void> {
    // The build's own failure is what the user must see; a leftover is only worth a warning.
    const warn = (what: string, error: unknown) => {
      if (!hasStatus(error, 404, 409))
        output.warn(`Could not remove ${what} of the failed build: ${engineMessage(error)}`);
    };
    if (progress.runningContainer !== undefined) {
      await this.docker
        .getContainer(progress.runningContainer)
        .remove({ force: true })
        .catch((error: unknown) => warn(`container ${progress.runningContainer}`, error));
    }
    // A cancelled build's last container may still be going away on the engine's side, holding its image.
    const deadline = Date.now() + 15_000;
    for (const id of [...progress.createdImages].reverse()) {
      for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
        try {
          const found = await this.docker.getImage(id).inspect();
          // Another build may have tagged it since; then it is not ours to remove.
          if ((found.RepoTags ?? []).length === 0) await this.docker.getImage(id).remove({ noprune: true });
          break;
        } catch (error) {
          const heldByContainer = hasStatus(error, 409) && /container/i.test(engineMessage(error));
          if (!heldByContainer || Date.now() + delay > deadline) {
            warn(`image ${id}`, error);
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    }
  }
}
