import { randomBytes } from "node:crypto";
import { isAbsolute, relative, resolve, sep } from "node:path";
import {
  BerthError,
  describeError,
  isBerthError,
  type Output,
  type Platform,
  validateAppName,
} from "@berth/core";
import { canAccess, type Identity } from "./access.js";
import { type ExtractSourceOptions, extractSource } from "./extract-source.js";
import { type Repositories, ZERO_REV } from "./repositories.js";
import { isNoSpace } from "./work-dirs.js";

export type GitService = "receive-pack" | "upload-pack";

export interface RefUpdate {
  oldRev: string;
  newRev: string;
  ref: string;
}

/** One `git receive-pack` or `git upload-pack` run that Berth authorised. */
export interface GitSession {
  readonly app: string;
  readonly identity: Identity;
  readonly service: GitService;
  readonly repoDir: string;
  /** Environment for the git process: how its pre-receive hook finds this process again. */
  readonly env: Record<string, string>;
  /** Call when the git process has exited: releases the app's push lock. */
  finish(): void;
}

export interface ReceiverOptions {
  autoCreate: boolean;
  /** Where sources may be extracted, best first; the next is tried when one is full. */
  workDirs: () => Promise<string[]>;
  submoduleProtocols: string[] | undefined;
  /** Where the hook finds us (set once the socket listens). */
  hookEnvironment: () => Promise<Record<string, string>>;
}

interface SessionState {
  app: string;
  identity: Identity;
  repoDir: string;
  releaseLock: (() => void) | undefined;
  hookRan: boolean;
}

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * Decides what a push means: who may push where, which ref deploys, and runs the deploy while git holds the
 * new objects in quarantine. Pushes to one app take turns from their pre-receive step until their
 * receive-pack exits, so the deployed rev and the ref always agree; different apps never wait for each other.
 */
export class PushReceiver {
  readonly #platform: Platform;
  readonly #repositories: Repositories;
  readonly #options: ReceiverOptions;
  readonly #sessions = new Map<string, SessionState>();
  readonly #pushTails = new Map<string, Promise<void>>();

  constructor(platform: Platform, repositories: Repositories, options: ReceiverOptions) {
    this.#platform = platform;
    this.#repositories = repositories;
    this.#options = options;
  }

  /**
   * Authorises `identity` for `service` on `app` and prepares the repository (creating the app on a first push
   * when allowed). Throws FORBIDDEN, APP_NOT_FOUND or INVALID_APP_NAME; nothing is created for a refused caller.
   */
  async open(identity: Identity, app: string, service: GitService): Promise<GitSession> {
    validateAppName(app);
    if (!canAccess(identity, app)) {
      throw new BerthError("FORBIDDEN", `${identity.user} may not access ${app}.`, { details: { app } });
    }
    const appExists = await this.#platform.apps.exists(app);
    if (service === "upload-pack") {
      if (!appExists || !(await this.#repositories.exists(app))) {
        throw new BerthError("APP_NOT_FOUND", `App ${app} has no repository; push to it first.`, {
          details: { app },
        });
      }
    } else if (!appExists) {
      if (!this.#options.autoCreate) {
        throw new BerthError("APP_NOT_FOUND", `App ${app} does not exist; create it first.`, {
          details: { app },
        });
      }
      try {
        await this.#platform.apps.create(app);
      } catch (error) {
        // Two first pushes at once: the other one created it.
        if (!isBerthError(error, "APP_EXISTS")) throw error;
      }
    }
    let repoDir = this.#repositories.path(app);
    if (service === "receive-pack") {
      const settings = await this.#platform.apps.get(app);
      repoDir = await this.#repositories.ensure(app, settings.deployBranch ?? "main");
    }
    const token = randomBytes(24).toString("base64url");
    const state: SessionState = { app, identity, repoDir, releaseLock: undefined, hookRan: false };
    this.#sessions.set(token, state);
    const env =
      service === "receive-pack"
        ? { ...(await this.#options.hookEnvironment()), BERTH_HOOK_TOKEN: token }
        : {};
    return {
      app,
      identity,
      service,
      repoDir,
      env,
      finish: () => {
        this.#sessions.delete(token);
        state.releaseLock?.();
        state.releaseLock = undefined;
      },
    };
  }

  /** Is `token` a live push session? (The hook socket checks before reading anything else.) */
  knows(token: unknown): boolean {
    return typeof token === "string" && this.#sessions.has(token);
  }

  /**
   * The pre-receive step of a push: returns the exit code for the hook (0 accepts every ref update). Output is
   * written to `output` as it happens; a rejection's reason is always the last line.
   */
  async preReceive(
    token: string,
    updates: RefUpdate[],
    hookEnv: Record<string, string>,
    output: Output,
  ): Promise<number> {
    const session = this.#sessions.get(token);
    if (!session || session.hookRan) {
      output.warn("This push is not known to Berth; nothing was deployed.");
      return 1;
    }
    session.hookRan = true;
    const { app, repoDir } = session;
    try {
      const quarantine = quarantineEnvironment(repoDir, hookEnv);
      for (const update of updates) {
        if (!COMMIT.test(update.oldRev) || !COMMIT.test(update.newRev) || !update.ref.startsWith("refs/")) {
          throw new BerthError("INVALID_REF", `Malformed ref update for ${JSON.stringify(update.ref)}.`);
        }
      }
      session.releaseLock = await this.#takeTurn(app, () =>
        output.step(`Waiting for another push to ${app} to finish`),
      );
      const settings = await this.#platform.apps.get(app);
      const refs = await this.#repositories.refs(app);
      for (const update of updates) {
        const current = refs.get(update.ref) ?? ZERO_REV;
        if (current !== update.oldRev) {
          throw new BerthError(
            "REF_CHANGED",
            `${update.ref} changed while you pushed (it is now ${current.slice(0, 7)}); fetch, then push again.`,
          );
        }
      }
      const deployRef = deployBranchRef(settings.deployBranch, refs, updates);
      for (const update of updates) {
        if (update.ref === deployRef && update.newRev === ZERO_REV) {
          throw new BerthError(
            "INVALID_REF",
            `Deleting ${shortRef(deployRef)}, the deploy branch of ${app}, is refused.`,
          );
        }
      }
      for (const update of updates) {
        if (update.ref !== deployRef) {
          output.step(
            update.newRev === ZERO_REV
              ? `Deleted ${shortRef(update.ref)}.`
              : `Stored ${shortRef(update.ref)}; nothing deployed (only ${shortRef(deployRef)} deploys ${app}).`,
          );
        }
      }
      const deployUpdate = updates.find((update) => update.ref === deployRef);
      if (!deployUpdate) return 0;
      output.step(`Deploying ${shortRef(deployRef)} (${deployUpdate.newRev.slice(0, 7)}) to ${app}`);
      const source = await this.#extract(repoDir, deployUpdate.newRev, quarantine, output);
      try {
        await this.#platform.deploy(
          app,
          { kind: "git", dir: source.dir, rev: source.rev, ref: deployRef },
          { output },
        );
      } finally {
        // Awaited: a process that exits right after the push must not leave the tree behind.
        await source
          .remove()
          .catch((error: unknown) => output.warn(`Could not remove ${source.dir}: ${describeError(error)}`));
      }
      // Clones check out what deploys; the deploy already happened, so a failure here must not reject the push.
      await this.#repositories
        .setHead(app, shortRef(deployRef))
        .catch((error: unknown) =>
          output.warn(`Could not point HEAD at ${deployRef}: ${describeError(error)}`),
        );
      return 0;
    } catch (error) {
      output.warn(`Push rejected: ${describeError(error)}`);
      return 1;
    }
  }

  async #extract(repoDir: string, rev: string, env: Record<string, string>, output: Output) {
    const workDirs = await this.#options.workDirs();
    for (const [index, workDir] of workDirs.entries()) {
      try {
        return await extractSource(repoDir, rev, {
          workDir,
          env,
          output,
          ...(this.#options.submoduleProtocols
            ? { submoduleProtocols: this.#options.submoduleProtocols }
            : {}),
        } satisfies ExtractSourceOptions);
      } catch (error) {
        if (index === workDirs.length - 1 || !isNoSpace(error)) throw error;
      }
    }
    throw new BerthError("INVALID_SOURCE", "No directory to extract the source into.");
  }

  /** Waits for earlier pushes to `app`; returns the function that lets the next one go. */
  async #takeTurn(app: string, onWait: () => void): Promise<() => void> {
    const previous = this.#pushTails.get(app);
    let release: () => void = () => {};
    const mine = new Promise<void>((resolvePromise) => {
      release = resolvePromise;
    });
    const tail = (previous ?? Promise.resolve()).then(() => mine);
    this.#pushTails.set(app, tail);
    if (previous) {
      onWait();
      await previous;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      if (this.#pushTails.get(app) === tail) this.#pushTails.delete(app);
    };
  }
}

function shortRef(ref: string): string {
  return ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : ref;
}

/**
 * The ref whose pushes deploy: the app's deploy branch, else `main`, or `master` when the repository has no
 * `main` and this push does not create one.
 */
export function deployBranchRef(
  deployBranch: string | undefined,
  refs: ReadonlyMap<string, string>,
  updates: readonly RefUpdate[],
): string {
  if (deployBranch) return `refs/heads/${deployBranch}`;
  const hasMain =
    refs.has("refs/heads/main") ||
    updates.some((update) => update.ref === "refs/heads/main" && update.newRev !== ZERO_REV);
  if (hasMain) return "refs/heads/main";
  const hasMaster =
    refs.has("refs/heads/master") || updates.some((update) => update.ref === "refs/heads/master");
  return hasMaster ? "refs/heads/master" : "refs/heads/main";
}

/** The quarantine variables of the hook, accepted only when they point inside the app's repository. */
function quarantineEnvironment(repoDir: string, hookEnv: Record<string, string>): Record<string, string> {
  const inside = (path: string) => {
    const absolute = isAbsolute(path) ? path : resolve(repoDir, path);
    const rest = relative(repoDir, absolute);
    return rest === "" || (!rest.startsWith(`..${sep}`) && rest !== ".." && !isAbsolute(rest))
      ? absolute
      : undefined;
  };
  const env: Record<string, string> = {};
  for (const name of ["GIT_OBJECT_DIRECTORY", "GIT_QUARANTINE_PATH"] as const) {
    const value = hookEnv[name];
    if (value === undefined) continue;
    const checked = typeof value === "string" ? inside(value) : undefined;
    if (!checked) throw new BerthError("INVALID_SOURCE", `${name} points outside the repository.`);
    env[name] = checked;
  }
  const alternates = hookEnv.GIT_ALTERNATE_OBJECT_DIRECTORIES;
  if (typeof alternates === "string" && alternates !== "") {
    const checked = alternates.split(":").map(inside);
    if (checked.some((path) => path === undefined)) {
      throw new BerthError(
        "INVALID_SOURCE",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES points outside the repository.",
      );
    }
    env.GIT_ALTERNATE_OBJECT_DIRECTORIES = checked.join(":");
  }
  return env;
}
