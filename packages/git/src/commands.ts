import type { Readable, Writable } from "node:stream";
import { BerthError, describeError } from "@berth/core";
import type { Identity } from "./access.js";

/** What a command handler receives when a user runs `ssh berth@host NAME ARGS…`. */
export interface CommandContext {
  /** The arguments after the command name, split like a shell would split them (no expansion). */
  argv: string[];
  /** The authenticated user and its scope; check `canAccess(user, app)` before touching an app. */
  user: Identity;
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
}

/** Returns the exit code. */
export type CommandHandler = (context: CommandContext) => Promise<number> | number;

export interface CommandOptions {
  /** One line for `help`. */
  description?: string;
  /** Only admins may run it (key management, app creation); default false, the handler checks app scope. */
  adminOnly?: boolean;
}

interface RegisteredCommand extends CommandOptions {
  name: string;
  handler: CommandHandler;
}

const COMMAND_NAME = /^[a-z][a-z0-9-]*(:[a-z0-9-]+)*$/;

/**
 * Berth commands that SSH users may run (`ssh berth@host config:set app K=V`). Other packages (a CLI, a daemon)
 * register their commands here; the git package only dispatches them, with the caller's identity.
 */
export class CommandRegistry {
  readonly #commands = new Map<string, RegisteredCommand>();

  register(name: string, handler: CommandHandler, options: CommandOptions = {}): this {
    if (!COMMAND_NAME.test(name) || name.startsWith("git-")) {
      throw new BerthError(
        "INVALID_SETTING",
        `Invalid command name ${JSON.stringify(name)}: use words like config:set.`,
      );
    }
    if (this.#commands.has(name)) {
      throw new BerthError("PLUGIN_CONFLICT", `A command named ${name} is already registered.`);
    }
    this.#commands.set(name, { ...options, name, handler });
    return this;
  }

  unregister(name: string): boolean {
    return this.#commands.delete(name);
  }

  has(name: string): boolean {
    return this.#commands.has(name);
  }

  /** Command names with their descriptions, for `help`. */
  list(): Array<{ name: string; description: string; adminOnly: boolean }> {
    return [...this.#commands.values()]
      .map((command) => ({
        name: command.name,
        description: command.description ?? "",
        adminOnly: command.adminOnly === true,
      }))
      .sort((left, right) => left.name.localeCompare(right.name));
  }

  /**
   * Runs `words[0]` with the rest as argv. Unknown commands, missing permission and thrown errors are written
   * to stderr as one line and answered with exit code 1 (unknown: 127); nothing here throws.
   */
  async run(words: string[], context: Omit<CommandContext, "argv">): Promise<number> {
    const [name, ...argv] = words;
    const command = name === undefined ? undefined : this.#commands.get(name);
    if (!command) {
      const known = this.list()
        .filter((entry) => !entry.adminOnly || context.user.admin)
        .map((entry) => entry.name);
      context.stderr.write(
        `Unknown command ${JSON.stringify(name ?? "")}. ${known.length > 0 ? `Commands: ${known.join(", ")}.` : "No commands are available."}\n`,
      );
      return 127;
    }
    if (command.adminOnly && !context.user.admin) {
      context.stderr.write(`${command.name} is for admins only; ${context.user.user} is scoped to apps.\n`);
      return 1;
    }
    try {
      const code = await command.handler({ ...context, argv });
      return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1;
    } catch (error) {
      context.stderr.write(` !     ${describeError(error)}\n`);
      return 1;
    }
  }
}

/**
 * Splits a command line the way a POSIX shell splits words (single quotes, double quotes, backslashes), with no
 * expansion of any kind: the words reach handlers as data.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let index = 0; index < line.length; index += 1) {
    const character = line[index] as string;
    if (quote === "'") {
      if (character === "'") quote = undefined;
      else current += character;
      continue;
    }
    if (quote === '"') {
      if (character === '"') quote = undefined;
      else if (
        character === "\\" &&
        index + 1 < line.length &&
        '"\\$`\n'.includes(line[index + 1] as string)
      ) {
        index += 1;
        current += line[index];
      } else current += character;
      continue;
    }
    if (character === "'" || character === '"') {
      quote = character;
      inWord = true;
    } else if (character === "\\" && index + 1 < line.length) {
      index += 1;
      current += line[index];
      inWord = true;
    } else if (character === " " || character === "\t" || character === "\n") {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      current += character;
      inWord = true;
    }
  }
  if (quote) {
    throw new BerthError("INVALID_COMMAND", `Unbalanced ${quote} quote in the command.`);
  }
  if (inWord) words.push(current);
  return words;
}
