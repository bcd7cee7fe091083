import { dockerfileBuilder } from "@berth/builder-dockerfile";
import { Platform, type PlatformOptions } from "@berth/core";
import { dockerScheduler } from "@berth/scheduler-docker";

/** A Dockerfile + Docker platform: enough to run apps written for Heroku or Dokku unchanged. */
export function createPlatform(options: Omit<PlatformOptions, "defaults">): Platform {
  return new Platform({ ...options, defaults: { builder: "dockerfile", scheduler: "docker" } })
    .use(dockerfileBuilder())
    .use(dockerScheduler({ stopGracePeriodSeconds: 2 }));
}

/** The sample app's directory. */
export const sampleApp = new URL("../sample-app/", import.meta.url).pathname;
