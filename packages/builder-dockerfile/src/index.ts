export { type ContextArchive, createContextArchive } from "./build-context.js";
export { DockerfileBuilder, type DockerfileBuilderOptions, imageRepository } from "./dockerfile-builder.js";
export { exposedPorts, renderDefaultCommand, shellQuote } from "./image-facts.js";
export { DockerfileBuilderPlugin, dockerfileBuilder } from "./plugin.js";
export {
  DEFAULT_DOCKERFILE_PATH,
  type DockerfileSettings,
  readSettings,
  SETTINGS_KEY,
  validateDockerfilePath,
} from "./settings.js";
