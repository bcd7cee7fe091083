import type { Output, Platform } from "@berth/core";
import type { Principal } from "../api-tokens.js";
import type { DaemonServices } from "../services.js";

export type FlagType = "boolean" | "string" | "list";

export interface FlagSpec {
  type: FlagType;
  /** One-letter alias (`-t`). */
  short?: string;
  description: string;
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** A command's input once parsed: the same shape over the CLI, the HTTP API and SSH. */
export interface CommandInput {
  args: string[];
  flags: FlagValues;
}

export interface CommandContext {
  platform: Platform;
  services: DaemonServices;
  principal: Principal;
  /** Heroku-style progress, streamed to the caller. */
  output: Output;
  /** Raw text streamed to the caller (logs, a one-off process). */
  write(text: string): void;
  /** Aborted when the caller goes away (for streams that would otherwise never end). */
  signal: AbortSignal;
  /** The uploaded body (a tar of the directory for `deploy --from-dir`). */
  upload: NodeJS.ReadableStream | undefined;
  /** Sets the exit code the caller's process should end with (`run` passes the one-off's own). */
  setExitCode(code: number): void;
}

/**
 * One Berth command. The definition is shared by the CLI (argument parsing, help, rendering), the HTTP
 * API and SSH exec (permissions, running), so every way in behaves the same.
 */
export interface CommandDefinition {
  name: string;
  summary: string;
  /** Positional part of the usage line, e.g. `APP KEY=VALUE...`. */
  usage: string;
  example: string;
  /**
   * `app`: the first argument names an app and app-scoped keys/tokens for that app may run it.
   * `admin`: admin credentials only. `any`: every authenticated caller (results are filtered).
   */
  scope: "app" | "admin" | "any";
  /** Read-only: accepts `--json` and changes nothing. */
  read?: boolean;
  minArgs: number;
  /** Undefined: no upper bound. */
  maxArgs?: number;
  /** After this many positional arguments, everything else is positional too (`run APP cmd --flag`). */
  restAfter?: number;
  flags?: Record<string, FlagSpec>;
  /** Keep running when the caller disconnects (deploys finish even if the terminal closes). */
  detached?: boolean;
  /** The command sends a tar body (client side: which flag names the directory). */
  uploadFlag?: string;
  /** Runs in the daemon. */
  run(input: CommandInput, context: CommandContext): Promise<unknown>;
  /** Text form of the result, for terminals and SSH; `--json` prints the result itself. */
  render?(result: never, input: CommandInput): string;
}
