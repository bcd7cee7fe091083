export {
  type AccessScope,
  type CreatedToken,
  canAccess,
  fingerprintOf,
  type Identity,
  type KeyRecord,
  KeyStore,
  type ParsedPublicKey,
  parsePublicKey,
  type TokenRecord,
  TokenStore,
} from "./access.js";
export { type AuthorizedKeysLineOptions, authorizedKeysLine } from "./authorized-keys.js";
export {
  type CommandContext,
  type CommandHandler,
  type CommandOptions,
  CommandRegistry,
  splitCommandLine,
} from "./commands.js";
export { type ExecRequest, parseExecCommand } from "./exec-command.js";
export { type ExtractedSource, type ExtractSourceOptions, extractSource } from "./extract-source.js";
export type { GitHttpHandler, HttpHandlerOptions } from "./http.js";
export { type GitOptions, GitPlugin, git, type Listening, type ListenOptions } from "./plugin.js";
export { deployBranchRef, type GitService, type GitSession, type RefUpdate } from "./receiver.js";
export { Repositories } from "./repositories.js";
export type { SshRefusal } from "./ssh-server.js";
