import type { BerthPlugin, Platform } from "@berth/core";
import { DockerfileBuilder, type DockerfileBuilderOptions } from "./dockerfile-builder.js";

/**
 * Registers the `dockerfile` builder and taps:
 * - `build`: answers when the app selected `dockerfile`, or selected no builder and has a Dockerfile;
 * - `pruneReleases`: removes images of releases that fell out of the kept window;
 * - `appDestroyed`: removes the app's images, after schedulers removed the containers using them.
 */
export class DockerfileBuilderPlugin implements BerthPlugin {
  readonly name = "builder-dockerfile";
  readonly builder: DockerfileBuilder;

  constructor(options: DockerfileBuilderOptions = {}) {
    this.builder = new DockerfileBuilder(options);
  }

  apply(platform: Platform): void {
    platform.registerBuilder(this.builder);
    platform.hooks.build.tapPromise(this.name, async (context) => {
      if (
        context.builder
          ? context.builder !== this.builder.name
          : !(await this.builder.detect(context.source, context.app))
      ) {
        return undefined;
      }
      return this.builder.build(context);
    });
    platform.hooks.pruneReleases.tapPromise(this.name, async ({ app, keep, prune }) => {
      await this.builder.pruneImages(app.name, keep, prune);
    });
    // A late stage: images still used by containers cannot go, and schedulers remove those at stage 0.
    platform.hooks.appDestroyed.tapPromise({ name: this.name, stage: 100 }, async ({ app, output }) => {
      const { inUse } = await this.builder.removeAppImages(app.name);
      for (const image of inUse) output.warn(`Image ${image} is still used by a container; left in place.`);
    });
  }
}

/** The Dockerfile builder plugin: `platform.use(dockerfileBuilder())`. */
export function dockerfileBuilder(options: DockerfileBuilderOptions = {}): DockerfileBuilderPlugin {
  return new DockerfileBuilderPlugin(options);
}
