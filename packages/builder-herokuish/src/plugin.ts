import { rename, rm } from "node:fs/promises";
import type { BerthPlugin, Platform } from "@berth/core";
import { HerokuishBuilder, type HerokuishBuilderOptions, PLUGIN_NAME } from "./builder.js";

/**
 * Registers the `herokuish` builder and taps `build` at stage 10, after the Dockerfile builder (stage 0): a
 * source with a Dockerfile goes to builder-dockerfile first; one that no builder before claims is built here
 * when the app selected `herokuish`, names its buildpacks, or an installed buildpack detects it.
 */
export class HerokuishBuilderPlugin implements BerthPlugin {
  readonly name = PLUGIN_NAME;
  readonly #options: HerokuishBuilderOptions;
  #builder: HerokuishBuilder | undefined;

  constructor(options: HerokuishBuilderOptions = {}) {
    this.#options = options;
  }

  /** The builder, once the plugin is applied (its defaults depend on the platform's data dir). */
  get builder(): HerokuishBuilder {
    if (!this.#builder) this.#builder = new HerokuishBuilder(this.#options);
    return this.#builder;
  }

  apply(platform: Platform): void {
    this.#builder ??= new HerokuishBuilder({ dataDir: platform.dataDir, ...this.#options });
    const builder = this.#builder;
    platform.registerBuilder(builder);
    platform.hooks.build.tapPromise({ name: this.name, stage: 10 }, async (context) => {
      if (context.builder) {
        return context.builder === builder.name ? builder.build(context) : undefined;
      }
      return builder.buildIfClaimed(context);
    });
    // An app's build cache follows the app: renamed with it, removed with it.
    platform.hooks.appRenamed.tapPromise(this.name, async ({ from, app }) => {
      await rename(builder.cacheDirFor(from), builder.cacheDirFor(app.name)).catch(
        (error: NodeJS.ErrnoException) => {
          if (error.code !== "ENOENT") throw error;
        },
      );
    });
    platform.hooks.appDestroyed.tapPromise(this.name, async ({ app }) => {
      await rm(builder.cacheDirFor(app.name), { recursive: true, force: true });
    });
  }
}

/** `platform.use(herokuishBuilder({ buildpacks: [...] }))` */
export function herokuishBuilder(options: HerokuishBuilderOptions = {}): HerokuishBuilderPlugin {
  return new HerokuishBuilderPlugin(options);
}
