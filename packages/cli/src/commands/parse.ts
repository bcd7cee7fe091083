import { BerthError } from "@berth/core";
import type { CommandDefinition, CommandInput, FlagValues } from "./types.js";

/** Flags every command takes. */
export const GLOBAL_FLAGS = {
  json: { type: "boolean", description: "Print the result as JSON (read commands)." },
  help: { type: "boolean", short: "h", description: "Show this command's help." },
} as const;

/**
 * Parses argv for one command: `--flag value`, `--flag=value`, `-x value`, `--no-restart`, `--` ends flags.
 * Unknown flags and wrong argument counts fail with USAGE, before anything runs.
 */
export function parseCommandArguments(command: CommandDefinition, argv: string[]): CommandInput {
  const specs = { ...(command.flags ?? {}) };
  const args: string[] = [];
  const flags: FlagValues = {};
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.short) byShort.set(spec.short, name);
  byShort.set("h", "help");
  let index = 0;
  let flagsEnded = false;
  while (index < argv.length) {
    const word = argv[index] as string;
    index += 1;
    if (flagsEnded || (command.restAfter !== undefined && args.length >= command.restAfter)) {
      args.push(word);
      continue;
    }
    if (word === "--") {
      flagsEnded = true;
      continue;
    }
    if (!word.startsWith("-") || word === "-") {
      args.push(word);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (word.startsWith("--")) {
      const equals = word.indexOf("=");
      name = equals === -1 ? word.slice(2) : word.slice(2, equals);
      inline = equals === -1 ? undefined : word.slice(equals + 1);
    } else {
      const short = word.slice(1, 2);
      const mapped = byShort.get(short);
      if (!mapped) throw usage(command, `Unknown option -${short}.`);
      name = mapped;
      inline = word.length > 2 ? word.slice(2) : undefined;
    }
    if (name === "json" || name === "help") {
      flags[name] = true;
      continue;
    }
    const spec = specs[name];
    if (!spec) throw usage(command, `Unknown option --${name}.`);
    if (spec.type === "boolean") {
      if (inline !== undefined) throw usage(command, `--${name} takes no value.`);
      flags[name] = true;
      continue;
    }
    const value = inline ?? argv[index];
    if (inline === undefined) index += 1;
    if (value === undefined) throw usage(command, `--${name} needs a value.`);
    if (spec.type === "list") {
      const previous = flags[name];
      flags[name] = [...(Array.isArray(previous) ? previous : []), value];
    } else {
      flags[name] = value;
    }
  }
  if (flags.help) return { args, flags };
  checkCounts(command, args);
  return { args, flags };
}

/** Input arriving over the API is re-checked against the command's definition: same rules as argv. */
export function checkCommandInput(command: CommandDefinition, input: unknown): CommandInput {
  if (typeof input !== "object" || input === null)
    throw usage(command, "The request body must be a JSON object.");
  const { args = [], flags = {} } = input as { args?: unknown; flags?: unknown };
  if (!Array.isArray(args) || args.some((arg) => typeof arg !== "string")) {
    throw usage(command, "args must be a list of strings.");
  }
  if (typeof flags !== "object" || flags === null || Array.isArray(flags)) {
    throw usage(command, "flags must be an object.");
  }
  const checked: FlagValues = {};
  for (const [name, value] of Object.entries(flags as Record<string, unknown>)) {
    if (value === undefined || value === null || value === false) continue;
    const spec = name === "json" ? ({ type: "boolean" } as const) : command.flags?.[name];
    if (!spec) throw usage(command, `Unknown option --${name}.`);
    const fits =
      spec.type === "boolean"
        ? value === true
        : spec.type === "string"
          ? typeof value === "string"
          : Array.isArray(value) && value.every((entry) => typeof entry === "string");
    if (!fits) throw usage(command, `--${name} has the wrong type (${spec.type} expected).`);
    checked[name] = value as string | boolean | string[];
  }
  checkCounts(command, args as string[]);
  return { args: args as string[], flags: checked };
}

function checkCounts(command: CommandDefinition, args: string[]): void {
  if (args.length < command.minArgs) throw usage(command, "Missing arguments.");
  if (command.maxArgs !== undefined && args.length > command.maxArgs) {
    throw usage(command, `Too many arguments (${args.length}).`);
  }
}

export function usage(command: CommandDefinition, problem: string): BerthError {
  return new BerthError("USAGE", `${problem} Usage: berth ${command.name} ${command.usage}`.trim(), {
    details: { command: command.name },
  });
}

export function formatHelp(command: CommandDefinition): string {
  const lines = [`Usage: berth ${command.name} ${command.usage}`.trimEnd(), "", command.summary, ""];
  const flags = Object.entries(command.flags ?? {});
  if (command.read) flags.push(["json", GLOBAL_FLAGS.json]);
  if (flags.length > 0) {
    lines.push("Options:");
    for (const [name, spec] of flags) {
      const value = spec.type === "boolean" ? "" : spec.type === "list" ? " VALUE (repeatable)" : " VALUE";
      const short = spec.short ? `-${spec.short}, ` : "";
      lines.push(`  ${`${short}--${name}${value}`.padEnd(30)} ${spec.description}`);
    }
    lines.push("");
  }
  lines.push("Example:", `  ${command.example}`, "");
  return lines.join("\n");
}
