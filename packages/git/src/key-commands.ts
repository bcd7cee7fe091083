import type { KeyStore } from "./access.js";
import type { CommandRegistry } from "./commands.js";

/**
 * `keys:add NAME [--app APP]… PUBKEY`, `keys:remove NAME`, `keys:list` and `help`, for admins over SSH. The
 * public key may arrive split into words (ssh joins the remote command with spaces); they are joined again.
 */
export function registerKeyCommands(commands: CommandRegistry, keys: () => KeyStore): void {
  commands.register(
    "keys:add",
    async ({ argv, stdout, stderr }) => {
      const apps: string[] = [];
      const words: string[] = [];
      for (let index = 0; index < argv.length; index += 1) {
        if (argv[index] === "--app" && argv[index + 1] !== undefined) {
          apps.push(argv[index + 1] as string);
          index += 1;
        } else words.push(argv[index] as string);
      }
      const [name, ...keyWords] = words;
      if (!name || keyWords.length === 0) {
        stderr.write("usage: keys:add NAME [--app APP]... 'ssh-ed25519 AAAA...'\n");
        return 2;
      }
      const record = await keys().add(name, keyWords.join(" "), apps.length > 0 ? { apps } : {});
      stdout.write(
        `Added ${record.name} ${record.fingerprint} (${record.admin ? "admin" : record.apps.join(", ")})\n`,
      );
      return 0;
    },
    { description: "Allow a public key: keys:add NAME [--app APP]... PUBKEY", adminOnly: true },
  );
  commands.register(
    "keys:remove",
    async ({ argv, stdout, stderr }) => {
      const [name] = argv;
      if (!name || argv.length !== 1) {
        stderr.write("usage: keys:remove NAME\n");
        return 2;
      }
      if (!(await keys().remove(name))) {
        stderr.write(`No key named ${name}.\n`);
        return 1;
      }
      stdout.write(`Removed ${name}\n`);
      return 0;
    },
    { description: "Remove a public key", adminOnly: true },
  );
  commands.register(
    "keys:list",
    async ({ stdout }) => {
      for (const record of await keys().list()) {
        stdout.write(
          `${record.name}\t${record.fingerprint}\t${record.admin ? "admin" : record.apps.join(",")}\n`,
        );
      }
      return 0;
    },
    { description: "List public keys with their SHA256 fingerprints", adminOnly: true },
  );
  commands.register(
    "help",
    ({ user, stdout }) => {
      for (const entry of commands.list()) {
        if (!entry.adminOnly || user.admin) stdout.write(`${entry.name.padEnd(16)} ${entry.description}\n`);
      }
      return 0;
    },
    { description: "List the commands you may run" },
  );
}
