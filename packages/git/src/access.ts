import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { BerthError, validateAppName, writeFileAtomic } from "@berth/core";
// ssh2 is CommonJS: Node's ESM loader only offers its default export.
import ssh2 from "ssh2";

/** Who is pushing or running a command, and what they may touch. */
export interface Identity {
  /** The user a token or key belongs to. */
  user: string;
  /** Admins may touch every app and create new ones; others only the apps listed. */
  admin: boolean;
  apps: readonly string[];
  /** How they proved it: `token:<id>` or `key:<name>`. */
  via: string;
}

/** Admin, or a list of apps. */
export interface AccessScope {
  admin?: boolean;
  apps?: string[];
}

export function canAccess(identity: Identity, app: string): boolean {
  return identity.admin || identity.apps.includes(app);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** User and key names: letters, digits, `.`, `_`, `@` and `-`, so they are safe in files, logs and argv. */
export function validateName(kind: "user" | "key", name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new BerthError(
      "INVALID_SETTING",
      `Invalid ${kind} name ${JSON.stringify(String(name).slice(0, 80))}: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.`,
    );
  }
  return name;
}

function resolveScope(scope: AccessScope): { admin: boolean; apps: string[] } {
  const apps = [...new Set((scope.apps ?? []).map((app) => validateAppName(app)))].sort();
  const admin = scope.admin ?? scope.apps === undefined;
  if (admin && apps.length > 0) {
    throw new BerthError("INVALID_SETTING", "A credential is either admin or scoped to apps, not both.");
  }
  if (!admin && apps.length === 0) {
    throw new BerthError("INVALID_SETTING", "A scoped credential needs at least one app.");
  }
  return { admin, apps };
}

/** A JSON file of records, re-read when it changes on disk (another process may add credentials). */
class JsonFile<T> {
  readonly #path: string;
  #cache: { mtimeMs: number; size: number; records: T[] } | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.#path = path;
  }

  async read(): Promise<T[]> {
    const info = await stat(this.#path).catch(() => undefined);
    if (!info) return [];
    if (this.#cache && this.#cache.mtimeMs === info.mtimeMs && this.#cache.size === info.size) {
      return this.#cache.records;
    }
    let records: T[];
    try {
      records = JSON.parse(await readFile(this.#path, "utf8")) as T[];
    } catch (error) {
      throw new BerthError("STORE_CORRUPT", `${this.#path} is not valid JSON; restore it from a backup.`, {
        cause: error,
      });
    }
    this.#cache = { mtimeMs: info.mtimeMs, size: info.size, records };
    return records;
  }

  /** Read, change and write back, one change at a time within this process. */
  update<R>(change: (records: T[]) => { records: T[]; result: R }): Promise<R> {
    const next = this.#queue.then(async () => {
      const { records, result } = change([...(await this.read())]);
      await writeFileAtomic(this.#path, `${JSON.stringify(records, null, 2)}\n`, { mode: 0o600 });
      this.#cache = undefined;
      return result;
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }
}

export interface TokenRecord {
  id: string;
  user: string;
  admin: boolean;
  apps: string[];
  /** SHA-256 of the token; the token itself is shown once and never stored. */
  hash: string;
  createdAt: string;
}

export interface CreatedToken {
  /** The secret, to hand to the user now; Berth keeps only its hash. */
  token: string;
  record: Omit<TokenRecord, "hash">;
}

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** HTTP tokens, stored hashed in `<data>/git/tokens.json` (mode 0600). */
export class TokenStore {
  readonly #file: JsonFile<TokenRecord>;

  constructor(path: string) {
    this.#file = new JsonFile(path);
  }

  async create(user: string, scope: AccessScope = {}): Promise<CreatedToken> {
    validateName("user", user);
    const { admin, apps } = resolveScope(scope);
    const id = randomBytes(6).toString("hex");
    const token = `berth_${randomBytes(24).toString("base64url")}`;
    const record: TokenRecord = {
      id,
      user,
      admin,
      apps,
      hash: hashToken(token),
      createdAt: new Date().toISOString(),
    };
    await this.#file.update((records) => ({ records: [...records, record], result: undefined }));
    const { hash: _hash, ...visible } = record;
    return { token, record: visible };
  }

  async list(): Promise<Array<Omit<TokenRecord, "hash">>> {
    return (await this.#file.read()).map(({ hash: _hash, ...visible }) => visible);
  }

  /** Revokes a token by id; returns whether one was removed. */
  async revoke(id: string): Promise<boolean> {
    return this.#file.update((records) => {
      const kept = records.filter((record) => record.id !== id);
      return { records: kept, result: kept.length !== records.length };
    });
  }

  /** The identity of `user:token`, or undefined when the token is unknown or belongs to someone else. */
  async verify(user: string, token: string): Promise<Identity | undefined> {
    const hash = Buffer.from(hashToken(token), "hex");
    let found: TokenRecord | undefined;
    for (const record of await this.#file.read()) {
      // Constant-time comparison over every record, so timing says nothing about near misses.
      if (timingSafeEqual(Buffer.from(record.hash, "hex"), hash)) found = record;
    }
    if (!found || found.user !== user) return undefined;
    return { user: found.user, admin: found.admin, apps: found.apps, via: `token:${found.id}` };
  }
}

export interface KeyRecord {
  name: string;
  /** `ssh-ed25519 AAAA…`, without the comment. */
  publicKey: string;
  /** `SHA256:…`, as `ssh-keygen -l` shows it. */
  fingerprint: string;
  /** The user the key belongs to; default its name. */
  user: string;
  admin: boolean;
  apps: string[];
  addedAt: string;
}

export interface ParsedPublicKey {
  type: string;
  /** The key blob in SSH wire format. */
  blob: Buffer;
  fingerprint: string;
  /** `type base64`. */
  line: string;
}

/** OpenSSH's SHA-256 fingerprint of a key blob: `SHA256:` and unpadded base64. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Parses one OpenSSH public key line (`ssh-ed25519 AAAA… comment`); private keys and garbage are refused. */
export function parsePublicKey(text: unknown): ParsedPublicKey {
  const invalid = (why: string) =>
    new BerthError("INVALID_KEY", `Invalid public key: ${why}. Give one line as in ~/.ssh/id_ed25519.pub.`);
  if (typeof text !== "string" || text.length > 16_384) throw invalid("not a key line");
  const trimmed = text.trim();
  if (trimmed.includes("\n") || trimmed.includes("PRIVATE KEY"))
    throw invalid("give the .pub file, one line");
  const parsed = ssh2.utils.parseKey(trimmed);
  if (parsed instanceof Error) throw invalid(parsed.message);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key.isPrivateKey()) throw invalid("that is a private key");
  const blob = key.getPublicSSH();
  return {
    type: key.type,
    blob,
    fingerprint: fingerprintOf(blob),
    line: `${key.type} ${blob.toString("base64")}`,
  };
}

/** SSH public keys allowed to push and run commands, in `<data>/git/keys.json` (mode 0600). */
export class KeyStore {
  readonly #file: JsonFile<KeyRecord>;

  constructor(path: string) {
    this.#file = new JsonFile(path);
  }

  /** `keys add NAME PUBKEY`: admin unless scoped to apps. */
  async add(
    name: string,
    publicKey: string,
    scope: AccessScope & { user?: string } = {},
  ): Promise<KeyRecord> {
    validateName("key", name);
    const user = validateName("user", scope.user ?? name);
    const parsed = parsePublicKey(publicKey);
    const { admin, apps } = resolveScope(scope);
    const record: KeyRecord = {
      name,
      publicKey: parsed.line,
      fingerprint: parsed.fingerprint,
      user,
      admin,
      apps,
      addedAt: new Date().toISOString(),
    };
    return this.#file.update((records) => {
      if (records.some((existing) => existing.name === name)) {
        throw new BerthError(
          "KEY_EXISTS",
          `A key named ${name} exists; remove it first (keys:remove ${name}).`,
        );
      }
      const twin = records.find((existing) => existing.fingerprint === record.fingerprint);
      if (twin) {
        throw new BerthError("KEY_EXISTS", `This key is already added as ${twin.name}.`);
      }
      return { records: [...records, record], result: record };
    });
  }

  async remove(name: string): Promise<boolean> {
    validateName("key", name);
    return this.#file.update((records) => {
      const kept = records.filter((record) => record.name !== name);
      return { records: kept, result: kept.length !== records.length };
    });
  }

  async list(): Promise<KeyRecord[]> {
    return this.#file.read();
  }

  async get(name: string): Promise<KeyRecord | undefined> {
    return (await this.#file.read()).find((record) => record.name === name);
  }

  /** The key record whose blob is exactly `blob`. */
  async find(blob: Buffer): Promise<KeyRecord | undefined> {
    const fingerprint = fingerprintOf(blob);
    const line = blob.toString("base64");
    return (await this.#file.read()).find(
      (record) => record.fingerprint === fingerprint && record.publicKey.endsWith(` ${line}`),
    );
  }
}

export function keyIdentity(record: KeyRecord): Identity {
  return { user: record.user, admin: record.admin, apps: record.apps, via: `key:${record.name}` };
}
