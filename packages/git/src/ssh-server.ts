import { readFile } from "node:fs/promises";
import { Writable } from "node:stream";
import { describeError, writeFileAtomic } from "@berth/core";
// ssh2 is CommonJS: Node's ESM loader only offers its default export.
import ssh2, { type CipherAlgorithm, type Connection, type Server, type ServerChannel } from "ssh2";
import { type Identity, type KeyStore, keyIdentity } from "./access.js";
import type { CommandRegistry } from "./commands.js";
import { parseExecCommand } from "./exec-command.js";
import { serveGitSession } from "./git-service.js";
import type { PushReceiver } from "./receiver.js";

export interface SshServerOptions {
  receiver: PushReceiver;
  keys: KeyStore;
  commands: CommandRegistry;
  /** The host's private key (OpenSSH format). */
  hostKey: string;
  /** Shown to clients before authentication; default none. */
  banner?: string;
  /** Told of every refused request (shell, pty, forwarding…), for audit logs. */
  onRefused?: (refusal: SshRefusal) => void;
}

/** A request the SSH server refused. */
export interface SshRefusal {
  /** `shell`, `pty`, `subsystem`, `env`, `x11`, `auth-agent`, `direct-tcpip`, `streamlocal`, or a global request name. */
  request: string;
  /** The authenticated user, when known. */
  user: string | undefined;
}

const SERVER_CIPHERS: CipherAlgorithm[] = [
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-ctr",
  "aes192-ctr",
  "aes256-ctr",
];

/** Reads the host key, generating and persisting (mode 0600) an Ed25519 key the first time. */
export async function loadHostKey(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const pair = generateHostKeyPair();
  await writeFileAtomic(path, pair.private, { mode: 0o600 });
  await writeFileAtomic(`${path}.pub`, `${pair.public}\n`, { mode: 0o644 });
  return pair.private;
}

/** An ed25519 key's public blob: string "ssh-ed25519" (4 + 11 bytes) and the 32-byte key (4 + 32). */
const ED25519_BLOB_LENGTH = 51;

/**
 * ssh2 drops a leading zero byte of the key when it encodes it (about 1 key in 400), which yields a key that
 * ssh2's own Server then refuses to load. Such a key is recognisable by its short public blob: draw again.
 */
export function generateHostKeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519");
    const blob = Buffer.from(pair.public.split(" ")[1] ?? "", "base64");
    if (blob.length === ED25519_BLOB_LENGTH) return pair;
  }
}

/**
 * An embedded SSH server that authenticates public keys against Berth's key store and serves exactly three
 * things: `git-receive-pack '<app>'`, `git-upload-pack '<app>'`, and registered Berth commands. Shells, PTYs,
 * subsystems, environment, agent, X11 and every kind of forwarding are refused.
 */
export function createSshServer(options: SshServerOptions): Server {
  return new ssh2.Server(
    {
      hostKeys: [options.hostKey],
      // OpenSSH clients pick chacha20-poly1305 first when offered, and ssh2 without its optional native
      // binding computes poly1305 in JavaScript; AES-GCM runs in OpenSSL and moves packs several times faster.
      algorithms: { cipher: SERVER_CIPHERS },
      ...(options.banner ? { banner: options.banner } : {}),
    },
    (client) => serveClient(client, options),
  );
}

function serveClient(client: Connection, options: SshServerOptions): void {
  let identity: Identity | undefined;
  // Without it every handshake round trip waits out the peer's delayed ACK (about 40 ms each).
  // (The server-side Connection has setNoDelay at runtime; @types/ssh2 only declares it on the client.)
  (client as Connection & { setNoDelay(noDelay: boolean): unknown }).setNoDelay(true);
  client.on("error", () => {
    // A client that drops mid-handshake is its own problem; the server carries on.
  });
  client.on("authentication", (context) => {
    if (context.method !== "publickey") {
      context.reject(["publickey"]);
      return;
    }
    options.keys
      .find(context.key.data)
      .then((record) => {
        if (!record) return context.reject(["publickey"]);
        if (!context.signature || !context.blob) return context.accept();
        const parsed = ssh2.utils.parseKey(record.publicKey);
        const key = Array.isArray(parsed) ? parsed[0] : parsed;
        if (
          !key ||
          key instanceof Error ||
          key.verify(context.blob, context.signature, context.hashAlgo) !== true
        ) {
          return context.reject(["publickey"]);
        }
        identity = keyIdentity(record);
        return context.accept();
      })
      .catch(() => context.reject(["publickey"]));
  });
  const refuse = (request: string, reject: (() => void) | undefined) => {
    options.onRefused?.({ request, user: identity?.user });
    reject?.();
  };
  client.on("ready", () => {
    client.on("session", (accept) => {
      const session = accept();
      session.on("pty", (_accept, reject) => refuse("pty", reject));
      session.on("x11", (_accept, reject) => refuse("x11", reject));
      session.on("env", (_accept, reject) => refuse("env", reject));
      session.on("auth-agent", (_accept, reject) => refuse("auth-agent", reject));
      session.on("subsystem", (_accept, reject) => refuse("subsystem", reject));
      session.on("shell", (_accept, reject) => refuse("shell", reject));
      session.on("exec", (acceptExec, _reject, info) => {
        const channel = acceptExec();
        // A client that hangs up mid-transfer makes writes fail; git's exit decides what happened.
        channel.on("error", () => {});
        channel.stderr.on("error", () => {});
        if (!identity) return finish(channel, 1, "Not authenticated.");
        void serveExec(channel, info.command, identity, options);
      });
    });
    client.on("tcpip", (_accept, reject) => refuse("direct-tcpip", reject));
    client.on("openssh.streamlocal", (_accept, reject) => refuse("streamlocal", reject));
    client.on("request", (_accept, reject, name) => refuse(name, reject));
  });
}

function finish(channel: ServerChannel, code: number, message?: string): void {
  if (message) channel.stderr.write(`${message}\n`);
  channel.exit(code);
  channel.end();
}

async function serveExec(
  channel: ServerChannel,
  command: string,
  identity: Identity,
  options: SshServerOptions,
): Promise<void> {
  try {
    const request = parseExecCommand(command);
    if (request.kind === "git") {
      const session = await options.receiver.open(identity, request.app, request.service);
      const code = await serveGitSession(session, {
        stdin: channel,
        stdout: channel,
        stderr: channel.stderr,
      });
      return finish(channel, code);
    }
    const abort = new AbortController();
    channel.once("close", () => abort.abort());
    // Handlers may end their streams; the channel must stay open until the exit status is sent.
    const keepOpen = (target: NodeJS.WritableStream) =>
      new Writable({
        write(chunk, _encoding, callback) {
          target.write(chunk);
          callback();
        },
      });
    const code = await options.commands.run(request.words, {
      user: identity,
      stdin: channel,
      stdout: keepOpen(channel),
      stderr: keepOpen(channel.stderr),
      signal: abort.signal,
    });
    return finish(channel, code);
  } catch (error) {
    return finish(channel, 1, ` !     ${describeError(error)}`);
  }
}
