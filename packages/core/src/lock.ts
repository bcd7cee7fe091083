import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { BerthError } from "./errors.js";

/** What a lock file says about its holder. */
export interface LockHolder {
  app: string;
  operation: string;
  pid: number;
  host: string;
  since: string;
  token: string;
}

export interface AcquireOptions {
  operation: string;
  /** How long to wait for another holder; default 10 minutes. */
  timeoutMs?: number;
  /** Told once when the lock is busy, with its holder, so the caller can show why it waits. */
  onWait?: (holder: LockHolder) => void;
  signal?: AbortSignal;
}

export interface HeldLock {
  holder: LockHolder;
  release(): Promise<void>;
}

const REAPER_STALE_MS = 10_000;

/**
 * One lock per app, shared by every process that uses the same data dir: a lock file created with O_EXCL.
 * A holder whose process is gone (same host, pid not alive) is recovered; removing a stale lock happens under
 * a short reaper lock so two waiters can never both remove it and end up both holding the app.
 */
export class AppLocks {
  readonly #dir: string;

  constructor(dataDir: string) {
    this.#dir = join(dataDir, "locks");
  }

  #path(app: string): string {
    return join(this.#dir, `${app}.lock`);
  }

  async acquire(app: string, options: AcquireOptions): Promise<HeldLock> {
    await mkdir(this.#dir, { recursive: true });
    const holder: LockHolder = {
      app,
      operation: options.operation,
      pid: process.pid,
      host: hostname(),
      since: new Date().toISOString(),
      token: randomBytes(8).toString("hex"),
    };
    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    let told = false;
    let delay = 10;
    for (;;) {
      if (await this.#tryCreate(app, holder)) {
        return { holder, release: () => this.#release(app, holder.token) };
      }
      const current = await this.holder(app);
      if (current && isDead(current)) {
        await this.#reap(app, current.token);
        continue;
      }
      if (current && !told) {
        told = true;
        options.onWait?.(current);
      }
      if (options.signal?.aborted) throw options.signal.reason;
      if (Date.now() >= deadline) {
        throw new BerthError(
          "APP_LOCKED",
          `App ${app} is locked by ${current ? `${current.operation} (pid ${current.pid} on ${current.host} since ${current.since})` : "another operation"}. Try again when it ends, or run unlock if that holder is gone.`,
          { details: { app, holder: current } },
        );
      }
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
      delay = Math.min(delay * 2, 200);
    }
  }

  /** Runs `work` while holding the app's lock. */
  async withLock<T>(app: string, options: AcquireOptions, work: (lock: HeldLock) => Promise<T>): Promise<T> {
    const lock = await this.acquire(app, options);
    try {
      return await work(lock);
    } finally {
      await lock.release();
    }
  }

  async holder(app: string): Promise<LockHolder | undefined> {
    try {
      return JSON.parse(await readFile(this.#path(app), "utf8")) as LockHolder;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      // An empty file is a holder between create and write, or one that died right there: give it two
      // seconds before treating it as dead.
      const age = await stat(this.#path(app)).then(
        (info) => Date.now() - info.mtimeMs,
        () => Number.POSITIVE_INFINITY,
      );
      return {
        app,
        operation: "unknown",
        pid: age > 2000 ? 0 : process.pid,
        host: hostname(),
        since: "",
        token: "",
      };
    }
  }

  /** Every lock that is held now. */
  async list(): Promise<LockHolder[]> {
    let entries: string[];
    try {
      entries = await readdir(this.#dir);
    } catch {
      return [];
    }
    const holders = await Promise.all(
      entries.filter((entry) => entry.endsWith(".lock")).map((entry) => this.holder(entry.slice(0, -5))),
    );
    return holders.filter((holder): holder is LockHolder => holder !== undefined);
  }

  /** For operators: remove the lock whoever holds it. */
  async forceUnlock(app: string): Promise<LockHolder | undefined> {
    const current = await this.holder(app);
    await rm(this.#path(app), { force: true });
    return current;
  }

  async #tryCreate(app: string, holder: LockHolder): Promise<boolean> {
    try {
      const file = await open(this.#path(app), "wx", 0o644);
      try {
        await file.writeFile(JSON.stringify(holder));
      } finally {
        await file.close();
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    }
  }

  async #release(app: string, token: string): Promise<void> {
    const current = await this.holder(app);
    if (current?.token === token) await rm(this.#path(app), { force: true });
  }

  async #reap(app: string, deadToken: string): Promise<void> {
    const reaperPath = `${this.#path(app)}.reaper`;
    try {
      const file = await open(reaperPath, "wx");
      await file.close();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age = await stat(reaperPath).then(
        (info) => Date.now() - info.mtimeMs,
        () => 0,
      );
      if (age > REAPER_STALE_MS) await rm(reaperPath, { force: true });
      await sleep(5);
      return;
    }
    try {
      const current = await this.holder(app);
      if (current && current.token === deadToken && isDead(current))
        await rm(this.#path(app), { force: true });
    } finally {
      await rm(reaperPath, { force: true });
    }
  }
}

function isDead(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return false;
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return true;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
