import { BerthError } from "@berth/core";
import { parsePublicKey, validateName } from "./access.js";

export interface AuthorizedKeysLineOptions {
  /** The key's name in Berth's key store; the forced command passes it to Berth. */
  keyName: string;
  /** The OpenSSH public key line. */
  publicKey: string;
  /** The Berth socket the forced command talks to (`GitPlugin.socketPath`). */
  socketPath: string;
  /** The forced command's program; default `berth-git-shell` from PATH. */
  command?: string;
}

const SAFE_ARGUMENT = /^[A-Za-z0-9_@%+=:,./-]+$/;

function shellQuote(text: string): string {
  return SAFE_ARGUMENT.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * One OpenSSH `authorized_keys` line for operators who keep their system sshd: a forced command that serves
 * git and Berth commands through the running Berth process, and no forwarding, agent, X11 or PTY.
 *
 *     command="berth-git-shell --socket /var/lib/berth/git/berth.sock alice",no-port-forwarding,… ssh-ed25519 AAAA… alice
 */
export function authorizedKeysLine(options: AuthorizedKeysLineOptions): string {
  const keyName = validateName("key", options.keyName);
  const key = parsePublicKey(options.publicKey);
  const program = options.command ?? "berth-git-shell";
  if (/[\n\r\0]/.test(program) || /[\n\r\0]/.test(options.socketPath)) {
    throw new BerthError("INVALID_SETTING", "The forced command and socket path must be single lines.");
  }
  // sshd runs the forced command with the user's shell, so each word is shell-quoted; the whole command then
  // sits in double quotes, where authorized_keys only treats `\"` and `\\` specially.
  const forced = [program, "--socket", options.socketPath, keyName].map(shellQuote).join(" ");
  const escaped = forced.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  return `command="${escaped}",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty ${key.line} ${keyName}`;
}
