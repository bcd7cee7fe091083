import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BerthError, validateAppName, writeFileAtomic } from "@berth/core";

/** Who is calling: an admin may run every command; an app-scoped caller only app commands of its apps. */
export interface Principal {
  name: string;
  admin: boolean;
  /** Apps an app-scoped principal may act on (empty for admins: they may act on all). */
  apps: readonly string[];
}

export const ADMIN: Principal = Object.freeze({ name: "admin", admin: true, apps: [] });

export interface TokenInfo {
  id: string;
  user: string;
  admin: boolean;
  apps: string[];
  createdAt: string;
}

/**
 * Where tokens live. @berth/git's `TokenStore` fits as is, so one token both pushes over HTTP
 * (`http://USER:TOKEN@host/app.git`) and calls the API (`BERTH_TOKEN=USER:TOKEN`).
 */
export interface TokenBackend {
  create(
    user: string,
    scope: { admin?: boolean; apps?: string[] },
  ): Promise<{ token: string; record: TokenInfo }>;
  list(): Promise<TokenInfo[]>;
  revoke(id: string): Promise<boolean>;
  verify(
    user: string,
    token: string,
  ): Promise<{ user: string; admin: boolean; apps: readonly string[]; via: string } | undefined>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function validateCredentialName(name: unknown, kind = "token"): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new BerthError(
      "INVALID_SETTING",
      `Invalid ${kind} name ${JSON.stringify(String(name).slice(0, 80))}: use 1-64 letters, digits, '.', '_', '@' or '-'.`,
      { details: { value: name } },
    );
  }
  return name;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function safeEqual(left: string, right: string): boolean {
  const a = Buffer.from(left);
  const b = Buffer.from(right);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A token file for daemons composed without @berth/git (`<data>/api/tokens.json`, mode 0600, hashes only). */
export class FileTokenBackend implements TokenBackend {
  readonly #path: string;

  constructor(dataDir: string) {
    this.#path = join(dataDir, "api", "tokens.json");
  }

  async #read(): Promise<Array<TokenInfo & { hash: string }>> {
    try {
      return JSON.parse(await readFile(this.#path, "utf8"));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new BerthError("STORE_CORRUPT", `${this.#path} is unreadable: ${(error as Error).message}`);
    }
  }

  async create(user: string, scope: { admin?: boolean; apps?: string[] }) {
    const apps = (scope.apps ?? []).map((app) => validateAppName(app));
    const token = `berth_${randomBytes(24).toString("base64url")}`;
    const record = {
      id: randomBytes(6).toString("hex"),
      user,
      admin: apps.length === 0,
      apps,
      createdAt: new Date().toISOString(),
    };
    await writeFileAtomic(
      this.#path,
      `${JSON.stringify([...(await this.#read()), { ...record, hash: sha256(token) }], null, 2)}\n`,
      {
        mode: 0o600,
      },
    );
    return { token, record };
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.#read()).map(({ hash: _hash, ...info }) => info);
  }

  async revoke(id: string): Promise<boolean> {
    const records = await this.#read();
    const kept = records.filter((record) => record.id !== id);
    if (kept.length === records.length) return false;
    await writeFileAtomic(this.#path, `${JSON.stringify(kept, null, 2)}\n`, { mode: 0o600 });
    return true;
  }

  async verify(user: string, token: string) {
    const digest = sha256(token);
    let found: (TokenInfo & { hash: string }) | undefined;
    for (const record of await this.#read()) if (safeEqual(record.hash, digest)) found = record;
    if (!found || found.user !== user) return undefined;
    return { user: found.user, admin: found.admin, apps: found.apps, via: `token:${found.id}` };
  }
}

/**
 * API credentials: `USER:TOKEN` pairs from `tokens:create` (sent as `Bearer USER:TOKEN` or HTTP Basic), and the
 * config's admin token. Tokens are named by user; `tokens:revoke NAME` revokes every token of that name.
 */
export class ApiTokens {
  readonly #adminToken: string | undefined;
  readonly #backend: () => TokenBackend;

  constructor(backend: () => TokenBackend, adminToken?: string) {
    this.#backend = backend;
    this.#adminToken = adminToken;
  }

  async create(name: string, apps: string[] | null): Promise<{ token: string; record: TokenInfo }> {
    validateCredentialName(name);
    if ((await this.list()).some((record) => record.user === name)) {
      throw new BerthError(
        "TOKEN_EXISTS",
        `A token named ${name} exists; revoke it first or pick another name.`,
      );
    }
    const created = await this.#backend().create(name, apps ? { apps } : { admin: true });
    return { token: `${name}:${created.token}`, record: created.record };
  }

  list(): Promise<TokenInfo[]> {
    return this.#backend().list();
  }

  async revoke(name: string): Promise<number> {
    validateCredentialName(name);
    const matching = (await this.list()).filter((record) => record.user === name || record.id === name);
    if (matching.length === 0)
      throw new BerthError("TOKEN_NOT_FOUND", `No token named ${name}; tokens:list shows them.`);
    for (const record of matching) await this.#backend().revoke(record.id);
    return matching.length;
  }

  /** The principal of an `Authorization` header, or undefined. */
  async authenticate(header: string | undefined): Promise<Principal | undefined> {
    if (!header) return undefined;
    let credential: string | undefined;
    const bearer = /^Bearer\s+(\S+)$/i.exec(header);
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    if (bearer) credential = bearer[1];
    else if (basic) credential = Buffer.from(basic[1] as string, "base64").toString("utf8");
    if (!credential) return undefined;
    if (this.#adminToken && safeEqual(credential, this.#adminToken)) return ADMIN;
    const colon = credential.indexOf(":");
    if (colon <= 0) return undefined;
    const identity = await this.#backend().verify(credential.slice(0, colon), credential.slice(colon + 1));
    if (!identity) return undefined;
    return { name: `${identity.user} (${identity.via})`, admin: identity.admin, apps: identity.apps };
  }
}
