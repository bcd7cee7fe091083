import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BerthError, validateAppName, writeFileAtomic } from "@berth/core";

/** Who is calling: an admin may run every command; an app-scoped caller only app commands of its apps. */
export interface Principal {
  name: string;
  admin: boolean;
  /** Apps an app-scoped principal may act on (empty for admins: they may act on all). */
  apps: string[];
}

export const ADMIN: Principal = Object.freeze({ name: "admin", admin: true, apps: [] }) as Principal;

export interface TokenRecord {
  name: string;
  /** sha256 of the token: the token itself is shown once and never stored. */
  hash: string;
  apps: string[] | null;
  createdAt: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function validateCredentialName(name: unknown, kind = "token"): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new BerthError(
      "INVALID_SETTING",
      `Invalid ${kind} name ${JSON.stringify(String(name).slice(0, 80))}: use 1-63 lower-case letters, digits, '.', '_' and '-'.`,
      { details: { value: name } },
    );
  }
  return name;
}

function hash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** API tokens for the TCP API (`<data>/api/tokens.json`, mode 0600). */
export class ApiTokens {
  readonly #path: string;
  readonly #adminToken: string | undefined;

  constructor(dataDir: string, adminToken?: string) {
    this.#path = join(dataDir, "api", "tokens.json");
    this.#adminToken = adminToken;
  }

  async list(): Promise<TokenRecord[]> {
    try {
      return JSON.parse(await readFile(this.#path, "utf8")) as TokenRecord[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new BerthError("STORE_CORRUPT", `${this.#path} is unreadable: ${(error as Error).message}`);
    }
  }

  /** Creates a token and returns it; only its hash is kept. */
  async create(name: string, apps: string[] | null): Promise<{ token: string; record: TokenRecord }> {
    validateCredentialName(name);
    if (apps) for (const app of apps) validateAppName(app);
    const records = await this.list();
    if (records.some((record) => record.name === name)) {
      throw new BerthError(
        "APP_EXISTS",
        `A token named ${name} exists; revoke it first or pick another name.`,
      );
    }
    const token = `berth_${randomBytes(24).toString("hex")}`;
    const record: TokenRecord = { name, hash: hash(token), apps, createdAt: new Date().toISOString() };
    await this.#write([...records, record]);
    return { token, record };
  }

  async revoke(name: string): Promise<void> {
    validateCredentialName(name);
    const records = await this.list();
    if (!records.some((record) => record.name === name)) {
      throw new BerthError("TOKEN_NOT_FOUND", `No token named ${name}; tokens:list shows them.`);
    }
    await this.#write(records.filter((record) => record.name !== name));
  }

  /** The principal a bearer token stands for, or undefined. Comparisons are constant-time. */
  async authenticate(token: string | undefined): Promise<Principal | undefined> {
    if (!token) return undefined;
    if (this.#adminToken && safeEqual(token, this.#adminToken)) return ADMIN;
    const digest = hash(token);
    for (const record of await this.list()) {
      if (safeEqual(digest, record.hash)) {
        return { name: `token:${record.name}`, admin: record.apps === null, apps: record.apps ?? [] };
      }
    }
    return undefined;
  }

  async #write(records: TokenRecord[]): Promise<void> {
    await writeFileAtomic(this.#path, `${JSON.stringify(records, null, 2)}\n`, { mode: 0o600 });
  }
}

function safeEqual(left: string, right: string): boolean {
  const a = Buffer.from(left);
  const b = Buffer.from(right);
  return a.length === b.length && timingSafeEqual(a, b);
}
