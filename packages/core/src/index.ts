export { parseAppJson } from "./app-json.js";
export { type AtomicWriteOptions, writeFileAtomic } from "./atomic-write.js";
export { type CronSchedule, cronEntryId, cronMatches, nextCronTime, parseCronSchedule } from "./cron.js";
export { type CronClock, type CronJob, CronJobs, systemClock } from "./cron-jobs.js";
export {
  BerthError,
  type BerthErrorCode,
  type BerthErrorOptions,
  describeError,
  isBerthError,
} from "./errors.js";
export { type BerthEvent, type EventListener, EventLog } from "./events.js";
export { fetchInstance, type InstanceResponse } from "./health-checks.js";
export { type BerthHooks, createHooks, type DeployedContext, type FailureContext } from "./hooks.js";
export { type AcquireOptions, AppLocks, type HeldLock, type LockHolder } from "./lock.js";
export type * from "./model.js";
export { collectOutput, Output, type OutputSink } from "./output.js";
export { readSourceManifest, releaseEnvironment, resolveAppJsonEnv, resolveFormation } from "./pipeline.js";
export {
  type ConfigChangeOptions,
  defaultAppSettings,
  formatPortMapping,
  type OperationOptions,
  Platform,
  type PlatformOptions,
  parsePortMapping,
} from "./platform.js";
export type * from "./plugin.js";
export { parseProcfile } from "./procfile.js";
export { FileStore, type Store } from "./store.js";
export {
  parseReleaseId,
  validateAppName,
  validateBranchName,
  validateConfigKey,
  validateConfigValue,
  validateConfigVars,
  validateDomain,
  validatePort,
  validateProcessType,
  validateScale,
} from "./validation.js";
