import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { syncDirectory, writeFileAtomic } from "./atomic-write.js";
import { BerthError } from "./errors.js";
import type { AppSettings, AppState, Release, ReleaseStatus } from "./model.js";

/**
 * Where Berth keeps its state. The default is `FileStore`; an embedder may supply another (a database) that
 * honours the same contract: single-record writes are atomic, releases are append-only and settle once.
 */
export interface Store {
  listApps(): Promise<string[]>;
  readApp(app: string): Promise<AppSettings | undefined>;
  writeApp(settings: AppSettings): Promise<void>;
  /** Removes everything stored for the app. */
  deleteApp(app: string): Promise<void>;
  /** Moves everything stored for `from` to `to`; fails when `to` exists. */
  renameApp(from: string, to: string): Promise<void>;
  readEnv(app: string): Promise<Record<string, string>>;
  writeEnv(app: string, env: Record<string, string>): Promise<void>;
  readState(app: string): Promise<AppState>;
  writeState(app: string, state: AppState): Promise<void>;
  /** All releases, oldest first. */
  listReleases(app: string): Promise<Release[]>;
  readRelease(app: string, version: number): Promise<Release | undefined>;
  /** Adds a new release; fails when that version exists. */
  createRelease(release: Release): Promise<void>;
  /** Moves a pending release to its final status, once. */
  settleRelease(
    app: string,
    version: number,
    status: Exclude<ReleaseStatus, "pending">,
    failure?: { code: string; message: string },
  ): Promise<Release>;
}

const RELEASE_FILE = /^v([1-9][0-9]*)\.json$/;

/** The default store: JSON files under `<data>/apps/<app>/`, written atomically. */
export class FileStore implements Store {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, "apps");
  }

  #dir(app: string): string {
    return join(this.root, app);
  }

  async #readJson<T>(path: string): Promise<T | undefined> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new BerthError(
        "STORE_CORRUPT",
        `State file ${path} is not valid JSON; restore it from a backup.`,
        {
          cause: error,
        },
      );
    }
  }

  async listApps(): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const apps: string[] = [];
    await Promise.all(
      entries.map(async (entry) => {
        if (entry.startsWith(".")) return;
        if (await exists(join(this.root, entry, "app.json"))) apps.push(entry);
      }),
    );
    return apps.sort();
  }

  readApp(app: string): Promise<AppSettings | undefined> {
    return this.#readJson<AppSettings>(join(this.#dir(app), "app.json"));
  }

  async writeApp(settings: AppSettings): Promise<void> {
    await writeFileAtomic(
      join(this.#dir(settings.name), "app.json"),
      `${JSON.stringify(settings, null, 2)}\n`,
    );
  }

  async deleteApp(app: string): Promise<void> {
    // Rename first so a crash mid-delete never leaves a half-removed app that still lists.
    const doomed = join(this.root, `.deleted-${app}-${process.pid}-${Date.now()}`);
    try {
      await rename(this.#dir(app), doomed);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    await syncDirectory(this.root);
    await rm(doomed, { recursive: true, force: true });
  }

  async renameApp(from: string, to: string): Promise<void> {
    if (await exists(this.#dir(to))) {
      throw new BerthError("APP_EXISTS", `App ${to} already exists.`, { details: { app: to } });
    }
    const settings = await this.readApp(from);
    if (!settings)
      throw new BerthError("APP_NOT_FOUND", `App ${from} does not exist.`, { details: { app: from } });
    await rename(this.#dir(from), this.#dir(to));
    await syncDirectory(this.root);
    await this.writeApp({ ...settings, name: to });
    const releases = await this.listReleases(to);
    for (const release of releases) {
      await writeFileAtomic(
        join(this.#dir(to), "releases", `v${release.version}.json`),
        `${JSON.stringify({ ...release, app: to }, null, 2)}\n`,
      );
    }
  }

  async readEnv(app: string): Promise<Record<string, string>> {
    return (await this.#readJson<Record<string, string>>(join(this.#dir(app), "env.json"))) ?? {};
  }

  async writeEnv(app: string, env: Record<string, string>): Promise<void> {
    // Config is often secret: readable by the owner only.
    await writeFileAtomic(join(this.#dir(app), "env.json"), `${JSON.stringify(env, null, 2)}\n`, {
      mode: 0o600,
    });
  }

  async readState(app: string): Promise<AppState> {
    return (await this.#readJson<AppState>(join(this.#dir(app), "state.json"))) ?? {};
  }

  async writeState(app: string, state: AppState): Promise<void> {
    await writeFileAtomic(join(this.#dir(app), "state.json"), `${JSON.stringify(state, null, 2)}\n`);
  }

  async listReleases(app: string): Promise<Release[]> {
    let entries: string[];
    try {
      entries = await readdir(join(this.#dir(app), "releases"));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const versions = entries
      .map((entry) => RELEASE_FILE.exec(entry)?.[1])
      .filter((version): version is string => version !== undefined)
      .map(Number)
      .sort((left, right) => left - right);
    const releases = await Promise.all(versions.map((version) => this.readRelease(app, version)));
    return releases.filter((release): release is Release => release !== undefined);
  }

  readRelease(app: string, version: number): Promise<Release | undefined> {
    return this.#readJson<Release>(join(this.#dir(app), "releases", `v${version}.json`));
  }

  async createRelease(release: Release): Promise<void> {
    const path = join(this.#dir(release.app), "releases", `v${release.version}.json`);
    if (await exists(path)) {
      throw new BerthError("INVALID_RELEASE", `Release ${release.id} of ${release.app} already exists.`);
    }
    await mkdir(join(this.#dir(release.app), "releases"), { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, `${JSON.stringify(release, null, 2)}\n`, { mode: 0o600 });
  }

  async settleRelease(
    app: string,
    version: number,
    status: Exclude<ReleaseStatus, "pending">,
    failure?: { code: string; message: string },
  ): Promise<Release> {
    const release = await this.readRelease(app, version);
    if (!release) throw new BerthError("RELEASE_NOT_FOUND", `Release v${version} of ${app} does not exist.`);
    if (release.status !== "pending") {
      throw new BerthError("INVALID_RELEASE", `Release v${version} of ${app} is already ${release.status}.`);
    }
    const settled: Release = {
      ...release,
      status,
      settledAt: new Date().toISOString(),
      ...(failure ? { failure } : {}),
    };
    await writeFileAtomic(
      join(this.#dir(app), "releases", `v${version}.json`),
      `${JSON.stringify(settled, null, 2)}\n`,
      { mode: 0o600 },
    );
    return settled;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
