import { BerthError, isBerthError } from "@berth/core";
import type { CommandRegistry } from "@berth/git";
import { commands } from "./commands/definitions.js";
import { executeCommand, exitCodeFor } from "./commands/execute.js";
import { formatHelp, parseCommandArguments } from "./commands/parse.js";
import type { CommandDefinition, CommandInput } from "./commands/types.js";
import type { DaemonServices } from "./services.js";

/**
 * Makes every command runnable over SSH (`ssh berth@host config:set hello K=V`) through @berth/git's command
 * registry, with the key's permissions: admin keys run everything, app-scoped keys app commands of their apps.
 * The git package's own `keys:*` and `help` are replaced, so SSH and the CLI behave the same.
 */
export function registerSshCommands(registry: CommandRegistry, services: DaemonServices): void {
  for (const name of ["keys:add", "keys:remove", "keys:list", "help"]) registry.unregister(name);
  for (const command of commands) {
    registry.register(
      command.name,
      async ({ argv, user, stdin, stdout, stderr, signal }) => {
        if (command.scope === "admin" && !user.admin) {
          return fail(stderr, forbidden(command.name, user.user, user.apps));
        }
        let input: CommandInput;
        try {
          input = parseCommandArguments(command, argv);
        } catch (error) {
          return fail(stderr, error);
        }
        if (input.flags.help) {
          stdout.write(formatHelp(command));
          return 0;
        }
        // `tar c . | ssh berth@host deploy APP --from-dir -` sends the directory on stdin.
        const upload = command.uploadFlag && input.flags[command.uploadFlag] === "-" ? stdin : undefined;
        const result = await executeCommand({
          services,
          principal: { name: `${user.user} (${user.via})`, admin: user.admin, apps: user.apps },
          name: command.name,
          input,
          signal,
          ...(upload ? { upload } : {}),
          sink: { output: (text) => stdout.write(text) },
        });
        if (!result.ok) {
          const error = result.error ?? { code: "INTERNAL", message: "Unknown failure." };
          stderr.write(` !     ${error.message}\n !     [${error.code}]\n`);
          return result.exitCode;
        }
        const text = renderResult(command, input, result.data);
        if (text) stdout.write(text.endsWith("\n") ? text : `${text}\n`);
        return result.exitCode;
      },
      // Permissions are judged by executeCommand, as for the API, so SSH answers FORBIDDEN (exit 4) the same way.
      { description: command.summary },
    );
  }
  registry.register(
    "help",
    ({ user, stdout }) => {
      for (const command of commands) {
        if (command.scope !== "admin" || user.admin) {
          stdout.write(`${`${command.name} ${command.usage}`.padEnd(48)} ${command.summary}\n`);
        }
      }
      return 0;
    },
    { description: "List the commands you may run" },
  );
}

function renderResult(command: CommandDefinition, input: CommandInput, data: unknown): string {
  if (input.flags.json) return data === null ? "" : JSON.stringify(data, null, 2);
  if (data === null) return "";
  if (command.render)
    return (command.render as (result: unknown, input: CommandInput) => string)(data, input);
  return command.read ? JSON.stringify(data, null, 2) : "";
}

function forbidden(command: string, user: string, apps: readonly string[]): BerthError {
  return new BerthError(
    "FORBIDDEN",
    `${command} needs admin credentials; ${user} is limited to ${apps.join(", ") || "no apps"}.`,
  );
}

function fail(stderr: NodeJS.WritableStream, error: unknown): number {
  const berthError = isBerthError(error) ? error : new BerthError("INTERNAL", String(error));
  stderr.write(` !     ${berthError.message}\n !     [${berthError.code}]\n`);
  return exitCodeFor(berthError.code);
}
