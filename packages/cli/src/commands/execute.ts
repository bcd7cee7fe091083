import { BerthError, describeError, isBerthError, Output } from "@berth/core";
import type { Principal } from "../api-tokens.js";
import type { DaemonServices } from "../services.js";
import { findCommand } from "./definitions.js";
import { checkCommandInput } from "./parse.js";
import type { CommandDefinition, CommandInput } from "./types.js";

/** Where one command's stream goes: the HTTP response, an SSH channel, or a test. */
export interface CommandSink {
  output(text: string): void;
}

export interface ExecutionResult {
  ok: boolean;
  data?: unknown;
  exitCode: number;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

/** Exit codes: 0 ok · 1 failed · 2 bad input · 3 not found · 4 not allowed · 5 conflict/locked · 69 no daemon. */
export function exitCodeFor(code: string): number {
  if (code === "USAGE" || code.startsWith("INVALID_") || code === "CONFIRMATION_REQUIRED") return 2;
  if (code.endsWith("_NOT_FOUND")) return 3;
  if (code === "UNAUTHORIZED" || code === "FORBIDDEN") return 4;
  if (code === "APP_EXISTS" || code === "APP_LOCKED" || code === "PLUGIN_CONFLICT") return 5;
  if (code === "DAEMON_UNAVAILABLE") return 69;
  return 1;
}

/** The permission rule, in one place: admins run everything; app-scoped callers app commands of their apps. */
export function authorize(principal: Principal, command: CommandDefinition, input: CommandInput): void {
  if (principal.admin || command.scope === "any") return;
  if (command.scope === "app") {
    const app = input.args[0];
    if (app !== undefined && principal.apps.includes(app)) return;
    throw new BerthError(
      "FORBIDDEN",
      `${principal.name} may not run ${command.name} on ${JSON.stringify(String(app).slice(0, 63))}: it is limited to ${principal.apps.join(", ") || "no apps"}.`,
    );
  }
  throw new BerthError(
    "FORBIDDEN",
    `${command.name} needs admin credentials; ${principal.name} is limited to ${principal.apps.join(", ") || "no apps"}.`,
  );
}

export interface ExecuteOptions {
  services: DaemonServices;
  principal: Principal;
  name: string;
  /** Raw input (from JSON or argv parsing); re-checked against the command's definition here. */
  input: unknown;
  sink: CommandSink;
  signal: AbortSignal;
  upload?: NodeJS.ReadableStream;
}

/**
 * Runs one command for one caller: finds it, re-checks its input, checks permissions, runs it, and turns
 * any failure into `{ code, message }`. Nothing runs before the input and the caller are judged.
 */
export async function executeCommand(options: ExecuteOptions): Promise<ExecutionResult> {
  const { services, principal, sink, signal } = options;
  let exitCode = 0;
  try {
    const command = findCommand(options.name);
    if (!command) {
      throw new BerthError(
        "COMMAND_NOT_FOUND",
        `Unknown command ${JSON.stringify(options.name.slice(0, 40))}; berth help lists them.`,
      );
    }
    // Admin-only commands are refused before their input is even looked at.
    if (command.scope === "admin" && !principal.admin) authorize(principal, command, { args: [], flags: {} });
    const input = checkCommandInput(command, options.input);
    authorize(principal, command, input);
    const output = new Output((text) => sink.output(text));
    const data = await command.run(input, {
      platform: services.platform,
      services,
      principal,
      output,
      write: (text) => sink.output(text),
      signal,
      upload: options.upload,
      setExitCode: (code) => {
        exitCode = code;
      },
    });
    output.flush();
    return { ok: true, data: data ?? null, exitCode };
  } catch (error) {
    const berthError = isBerthError(error)
      ? error
      : new BerthError("INTERNAL", `Unexpected failure: ${describeError(error)}`, { cause: error });
    return {
      ok: false,
      exitCode: exitCodeFor(berthError.code),
      error: { code: berthError.code, message: berthError.message, details: berthError.details },
    };
  }
}
