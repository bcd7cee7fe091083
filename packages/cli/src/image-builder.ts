import {
  type Artifact,
  BerthError,
  type BerthPlugin,
  type OperationOptions,
  type Platform,
  type Release,
} from "@berth/core";
import Docker from "dockerode";
import { validateImageReference } from "./image-reference.js";

export interface ImageBuilderOptions {
  /** The Docker engine to ask about images; default the local socket. */
  docker?: Docker;
}

/** `["sh","-c","x"]` → `sh -c x`, quoting words that need it, for display as a process type. */
function renderCommand(words: string[]): string {
  return words
    .map((word) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`))
    .join(" ");
}

/**
 * `deploy --from-image`: releases an image that already exists on the engine, without building, through
 * core's release → deploy → checks → route path. Registered as the builder named `image`; it never claims
 * a pushed source (detection is always false), so only `deploy --from-image` selects it.
 */
export class ImageBuilderPlugin implements BerthPlugin {
  readonly name = "image";
  readonly #docker: Docker;

  constructor(options: ImageBuilderOptions = {}) {
    this.#docker = options.docker ?? new Docker();
  }

  apply(platform: Platform): void {
    platform.registerBuilder({
      name: this.name,
      detect: async () => false,
      build: async (context) => {
        throw new BerthError(
          "NO_BUILDER",
          `The image builder does not build sources; deploy an image with deploy ${context.app.name} --from-image IMAGE.`,
        );
      },
    });
  }

  /** The artifact for a local image: its CMD becomes the `web` process, run as the image defines it. */
  async inspect(image: string): Promise<Artifact> {
    validateImageReference(image);
    let info: Docker.ImageInspectInfo;
    try {
      info = await this.#docker.getImage(image).inspect();
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) {
        throw new BerthError(
          "INVALID_SOURCE",
          `Image ${image} does not exist on this Docker engine; build or load it first (docker images lists what exists).`,
          { details: { image } },
        );
      }
      throw new BerthError("BUILD_FAILED", `Could not inspect image ${image}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const command = [...(info.Config.Entrypoint ?? []), ...(info.Config.Cmd ?? [])];
    const ports = Object.keys(info.Config.ExposedPorts ?? {})
      .map((key) => Number(key.split("/")[0]))
      .filter((port) => Number.isInteger(port) && port > 0);
    return {
      builder: "image",
      image,
      launcher: "shell",
      imageDefaultProcess: "web",
      defaultProcessTypes: command.length > 0 ? { web: renderCommand(command) } : {},
      ...(ports.length > 0 ? { ports } : {}),
      metadata: { imageId: info.Id, source: image },
    };
  }

  /** Deploys `image` as a new release (release, deploy, checks, route, retire). */
  async deploy(
    platform: Platform,
    app: string,
    image: string,
    options: OperationOptions = {},
  ): Promise<Release> {
    const artifact = await this.inspect(image);
    options.output?.step(`Releasing image ${image} (no build)`);
    return platform.deployArtifact(app, artifact, { ...options, description: `Deploy image ${image}` });
  }
}

export function imageBuilder(options: ImageBuilderOptions = {}): ImageBuilderPlugin {
  return new ImageBuilderPlugin(options);
}
