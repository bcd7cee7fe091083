export { DockerfileBuilder, type DockerfileBuilderOptions, imageRepository } from "./dockerfile-builder.js";
export { DockerfileBuilderPlugin, dockerfileBuilder } from "./plugin.js";
export {
  DEFAULT_DOCKERFILE_PATH,
  type DockerfileSettings,
  readDockerfileSettings,
  validateDockerfilePath,
} from "./settings.js";
