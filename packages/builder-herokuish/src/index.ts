export {
  BUILD_USER_ID,
  DEFAULT_STACK_IMAGE,
  DEFAULT_WEB_PORT,
  HerokuishBuilder,
  type HerokuishBuilderOptions,
  PLUGIN_NAME,
} from "./builder.js";
export {
  type BuildpackReference,
  type FetchedBuildpack,
  type FetchOptions,
  fetchBuildpack,
  parseBuildpackReference,
  parseBuildpacksFile,
} from "./buildpacks.js";
export { HerokuishBuilderPlugin, herokuishBuilder } from "./plugin.js";
export { type BuildpackRelease, parseReleaseYaml } from "./release-yaml.js";
export {
  addBuildpack,
  clearBuildpacks,
  listBuildpacks,
  removeBuildpack,
  setBuildpacks,
} from "./settings.js";
export { isSlugIgnored, parseSlugIgnore, type SlugIgnore } from "./slug.js";
export { type ExportSlugOptions, exportSlug } from "./slug-export.js";
export { BUILD_STACK_SCRIPT, type BuildStackImageOptions, buildStackImage } from "./stack.js";
