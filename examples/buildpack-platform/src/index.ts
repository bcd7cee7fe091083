import { type HerokuishBuilderOptions, HerokuishBuilderPlugin } from "@berth/builder-herokuish";
import { Platform, type PlatformOptions } from "@berth/core";
import { type DockerSchedulerOptions, dockerScheduler } from "@berth/scheduler-docker";

export interface BuildpackPlatformOptions extends PlatformOptions {
  builder?: HerokuishBuilderOptions;
  scheduler?: DockerSchedulerOptions;
}

/**
 * A platform that builds apps with Heroku buildpacks in the stack image and runs each process type as
 * containers on the local Docker engine: `git push`-less Heroku in a dozen lines.
 */
export function createBuildpackPlatform(options: BuildpackPlatformOptions = {}): Platform {
  const { builder, scheduler, ...platformOptions } = options;
  const platform = new Platform({
    ...platformOptions,
    defaults: { scheduler: "docker", ...platformOptions.defaults },
  });
  platform.use(new HerokuishBuilderPlugin(builder)).use(dockerScheduler(scheduler));
  return platform;
}
