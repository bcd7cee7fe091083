/**
 * Every failure Berth reports to a user is a `BerthError`: a stable `code` that programs can match on,
 * and a message that says what went wrong and what to do next.
 */
export type BerthErrorCode =
  | "INVALID_APP_NAME"
  | "INVALID_PROCESS_TYPE"
  | "INVALID_CONFIG_KEY"
  | "INVALID_CONFIG_VALUE"
  | "INVALID_DOMAIN"
  | "INVALID_PORT"
  | "INVALID_PORT_MAPPING"
  | "INVALID_SCALE"
  | "INVALID_RELEASE"
  | "INVALID_SETTING"
  | "INVALID_SOURCE"
  | "INVALID_REF"
  | "APP_EXISTS"
  | "APP_NOT_FOUND"
  | "APP_LOCKED"
  | "APP_NOT_DEPLOYED"
  | "RELEASE_NOT_FOUND"
  | "RELEASE_PRUNED"
  | "PROCFILE_INVALID"
  | "APP_JSON_INVALID"
  | "CONFIG_REQUIRED_MISSING"
  | "NO_BUILDER"
  | "BUILD_FAILED"
  | "RELEASE_PHASE_FAILED"
  | "PLUGIN_NOT_FOUND"
  | "PLUGIN_CONFLICT"
  | "DEPLOY_FAILED"
  | "CHECK_FAILED"
  | "ROUTE_FAILED"
  | "SCHEDULER_FAILED"
  | "PROXY_FAILED"
  | "STORE_CORRUPT"
  | "NOT_SUPPORTED"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | (string & {});

export interface BerthErrorOptions {
  cause?: unknown;
  /** Structured facts about the failure (the offending value, a line number, a field path). */
  details?: Record<string, unknown>;
}

export class BerthError extends Error {
  override readonly name = "BerthError";
  readonly code: BerthErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: BerthErrorCode, message: string, options: BerthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): { code: string; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isBerthError(value: unknown, code?: BerthErrorCode): value is BerthError {
  return value instanceof BerthError && (code === undefined || value.code === code);
}

/** The message of anything thrown, for output lines and event logs. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
