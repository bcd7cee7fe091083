import { BerthError, validateAppName } from "@berth/core";
import { splitCommandLine } from "./commands.js";
import type { GitService } from "./receiver.js";

/** What an SSH `exec` (or an `authorized_keys` forced command's SSH_ORIGINAL_COMMAND) asks for. */
export type ExecRequest =
  | { kind: "git"; service: GitService; app: string }
  | { kind: "command"; words: string[] };

const GIT_COMMAND = /^git[- ](receive-pack|upload-pack) '([^']*)'$/;

/**
 * Parses `git-receive-pack '/app.git'` (what git sends over SSH) or a Berth command line. The repository path
 * must name an app: an optional leading `/`, the app name, an optional `.git`; nothing else reaches the disk.
 */
export function parseExecCommand(command: string): ExecRequest {
  if (typeof command !== "string" || command.length > 65_536 || command.includes("\0")) {
    throw new BerthError("INVALID_COMMAND", "Invalid command.");
  }
  const trimmed = command.trim();
  const match = GIT_COMMAND.exec(trimmed);
  if (match) {
    let path = match[2] as string;
    if (path.startsWith("/")) path = path.slice(1);
    if (path.endsWith("/")) path = path.slice(0, -1);
    if (path.endsWith(".git")) path = path.slice(0, -4);
    return { kind: "git", service: match[1] as GitService, app: validateAppName(path) };
  }
  if (/^git[- ]/.test(trimmed)) {
    throw new BerthError(
      "INVALID_COMMAND",
      "Only git-receive-pack and git-upload-pack of an app are served, e.g. git push berth@host:myapp main.",
    );
  }
  const words = splitCommandLine(trimmed);
  if (words.length === 0) {
    throw new BerthError("INVALID_COMMAND", "No shell here: give a command, e.g. ssh berth@host help.");
  }
  return { kind: "command", words };
}
