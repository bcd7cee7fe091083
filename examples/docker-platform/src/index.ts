import { dockerfileBuilder } from "@berth/builder-dockerfile";
import { Platform, type PlatformOptions } from "@berth/core";
import { type DockerSchedulerOptions, dockerScheduler } from "@berth/scheduler-docker";

export interface DockerPlatformOptions extends Omit<PlatformOptions, "defaults"> {
  /** The engine's socket; default DOCKER_HOST or /var/run/docker.sock. */
  socketPath?: string;
  /** Options of the Docker scheduler (restart policy, stop grace period). */
  scheduler?: Omit<DockerSchedulerOptions, "socketPath" | "docker">;
}

/**
 * A platform that builds apps from their Dockerfile and runs every process type as containers on one
 * Docker engine, with web instances published on 127.0.0.1 (put a proxy in front with `platform.use`).
 */
export function createDockerPlatform(options: DockerPlatformOptions = {}): Platform {
  const { socketPath, scheduler, ...platformOptions } = options;
  const engine = socketPath === undefined ? {} : { socketPath };
  return new Platform({ ...platformOptions, defaults: { builder: "dockerfile", scheduler: "docker" } })
    .use(dockerfileBuilder(engine))
    .use(dockerScheduler({ ...scheduler, ...engine }));
}
