export {
  BerthClient,
  type ClientOptions,
  type CommandCallOptions,
  type CommandResponse,
} from "./api/client.js";
export { type ApiServerOptions, createApiServer } from "./api/server.js";
export {
  ADMIN,
  ApiTokens,
  FileTokenBackend,
  type Principal,
  type TokenBackend,
  type TokenInfo,
} from "./api-tokens.js";
export { type CliIo, runCli, VERSION } from "./cli.js";
export { commands, findCommand } from "./commands/definitions.js";
export { authorize, type ExecutionResult, executeCommand, exitCodeFor } from "./commands/execute.js";
export { formatHelp, parseCommandArguments } from "./commands/parse.js";
export type { CommandContext, CommandDefinition, CommandInput } from "./commands/types.js";
export { composeBuiltIn, loadExtraPlugins } from "./compose.js";
export {
  type BerthConfig,
  defineConfig,
  loadConfig,
  type PluginReference,
  type ResolvedConfig,
  resolveConfig,
} from "./config.js";
export { BerthDaemon, type Composition, type DaemonOptions, startDaemon } from "./daemon.js";
export { type DoctorCheck, doctorChecks } from "./doctor.js";
export { ImageBuilderPlugin, imageBuilder } from "./image-builder.js";
export { validateImageReference } from "./image-reference.js";
export type * from "./services.js";
