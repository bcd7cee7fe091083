export {
  containerName,
  DockerScheduler,
  type DockerSchedulerOptions,
  LABELS,
  networkName,
  processCommand,
  SHARED_NETWORK,
  webPort,
} from "./docker-scheduler.js";
export { DockerSchedulerPlugin, dockerScheduler } from "./plugin.js";
export {
  type DockerAppSettings,
  parseDockerSettings,
  type ResourceLimits,
  type RestartPolicy,
  SETTINGS_KEY,
  type VolumeMount,
} from "./settings.js";
