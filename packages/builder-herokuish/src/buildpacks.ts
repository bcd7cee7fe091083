import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, constants, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, isAbsolute, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGunzip } from "node:zlib";
import { BerthError, describeError } from "@berth/core";
import { simpleGit } from "simple-git";
import tar from "tar-fs";

/** A buildpack as a user names it: `URL[#ref]`. */
export interface BuildpackReference {
  /** Exactly as given, for messages. */
  text: string;
  url: string;
  ref: string | undefined;
  kind: "git" | "tarball" | "directory";
}

/** A buildpack ready to copy into a build container. */
export interface FetchedBuildpack {
  reference: BuildpackReference;
  /** Directory on this host holding bin/detect, bin/compile (and bin/release). */
  dir: string;
  /** Short name for messages and for its directory in the container. */
  name: string;
}

const REF = /^[A-Za-z0-9._/-]{1,200}$/;
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+$/;
const URL_SCHEME = /^(https?|git|ssh|file):\/\//;
const TARBALL = /\.(tgz|tar\.gz)$/;

function invalid(text: string, why: string): never {
  throw new BerthError("INVALID_SETTING", `Invalid buildpack ${JSON.stringify(text)}: ${why}`, {
    details: { buildpack: text },
  });
}

/**
 * Parses `URL[#ref]`: git URLs (https, git, ssh, scp-like `git@host:path`, `file://`), `.tgz` / `.tar.gz` URLs,
 * and absolute paths of local directories. The ref is a branch, a tag or a commit.
 */
export function parseBuildpackReference(text: string): BuildpackReference {
  const trimmed = text.trim();
  if (trimmed === "" || /[\s\0]/.test(trimmed)) invalid(text, "give one URL without spaces.");
  if (trimmed.startsWith("-")) invalid(text, "a buildpack URL cannot start with '-'.");
  const hash = trimmed.indexOf("#");
  const url = hash === -1 ? trimmed : trimmed.slice(0, hash);
  const ref = hash === -1 ? undefined : trimmed.slice(hash + 1);
  if (ref !== undefined && (!REF.test(ref) || ref.startsWith("-") || ref.includes(".."))) {
    invalid(text, "the part after '#' must be a branch, tag or commit.");
  }
  if (isAbsolute(url)) {
    return { text: trimmed, url, ref, kind: ref === undefined ? "directory" : "git" };
  }
  if (!URL_SCHEME.test(url) && !SCP_LIKE.test(url)) {
    if (/^[a-z0-9-]+\/[a-z0-9-]+$/.test(url)) {
      invalid(text, "buildpack registry names need Heroku's registry; give the buildpack's git or .tgz URL.");
    }
    invalid(
      text,
      "use a git URL (https://, git://, ssh://, file://, git@host:path), a .tgz URL or an absolute path.",
    );
  }
  if (TARBALL.test(url)) {
    if (ref !== undefined) invalid(text, "a tarball has no refs; drop the '#...'.");
    return { text: trimmed, url, ref, kind: "tarball" };
  }
  return { text: trimmed, url, ref, kind: "git" };
}

/** `.buildpacks`: one `URL[#ref]` per line, `#` comments and blank lines ignored. */
export function parseBuildpacksFile(text: string): BuildpackReference[] {
  return text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map(parseBuildpackReference);
}

export function buildpackName(reference: BuildpackReference): string {
  const base = basename(
    reference.url.replace(/\/+$/, "").replace(SCP_LIKE.test(reference.url) ? /^.*:/ : /^$/, ""),
  )
    .replace(TARBALL, "")
    .replace(/\.git$/, "");
  const cleaned = base.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[.-]+/, "");
  return cleaned || "buildpack";
}

export interface FetchOptions {
  /** Where fetched buildpacks are kept, keyed by URL and ref. */
  cacheDir: string;
  signal?: AbortSignal;
  /** Progress lines (`Fetching …`). */
  onProgress?: (line: string) => void;
}

const inFlight = new Map<string, Promise<string>>();

/** Brings a buildpack onto this host (or finds it in the cache) and checks its scripts. */
export async function fetchBuildpack(
  reference: BuildpackReference,
  options: FetchOptions,
): Promise<FetchedBuildpack> {
  const name = buildpackName(reference);
  let dir: string;
  if (reference.kind === "directory") {
    const info = await stat(reference.url).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new BerthError("BUILD_FAILED", `Buildpack ${reference.text} is not a directory on this host.`, {
        details: { buildpack: reference.text },
      });
    }
    dir = reference.url;
  } else {
    const key = createHash("sha256")
      .update(`${reference.url}#${reference.ref ?? ""}`)
      .digest("hex")
      .slice(0, 16);
    const target = join(options.cacheDir, `${name}-${key}`);
    // Two builds fetching the same buildpack at once share one fetch.
    let pending = inFlight.get(target);
    if (!pending) {
      pending = (
        reference.kind === "git"
          ? fetchGit(reference, target, options)
          : fetchTarball(reference, target, options)
      ).finally(() => inFlight.delete(target));
      inFlight.set(target, pending);
    }
    dir = await pending;
  }
  await checkScripts(reference, dir);
  return { reference, dir, name };
}

function fetchFailed(reference: BuildpackReference, error: unknown): BerthError {
  const message = describeError(error).trim().split("\n").slice(-6).join("\n");
  return new BerthError("BUILD_FAILED", `Could not fetch buildpack ${reference.text}: ${message}`, {
    cause: error,
    details: { buildpack: reference.text },
  });
}

/** What git needs from this process's environment; editors, pagers and askpass helpers stay out. */
const PASSED_ENVIRONMENT = [
  "PATH",
  "HOME",
  "LANG",
  "SSH_AUTH_SOCK",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "GIT_SSL_CAINFO",
];

function git(baseDir?: string, signal?: AbortSignal) {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENVIRONMENT) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return simpleGit({
    ...(baseDir ? { baseDir } : {}),
    ...(signal ? { abort: signal } : {}),
    timeout: { block: 120_000 },
    // Our own fixed ssh command (batch mode), never a user-supplied one.
    unsafe: { allowUnsafeSshCommand: true },
  }).env({
    ...env,
    // Fail instead of waiting for a password or a host-key answer nobody will give.
    GIT_TERMINAL_PROMPT: "0",
    GIT_SSH_COMMAND: "ssh -o BatchMode=yes",
  });
}

async function fetchGit(
  reference: BuildpackReference,
  target: string,
  options: FetchOptions,
): Promise<string> {
  const ref = reference.ref;
  const cached = await exists(join(target, ".git"));
  if (cached && ref && /^[0-9a-f]{40}$/.test(ref)) return target;
  try {
    if (cached) {
      options.onProgress?.(`Updating buildpack ${reference.text}`);
      try {
        await git(target, options.signal).fetch(["--quiet", "--tags", "--force", "--prune", "origin"]);
      } catch (error) {
        // An unreachable remote should not break builds that worked with the copy fetched before.
        options.onProgress?.(
          `Could not update (${describeError(error).trim().split("\n")[0]}); using the cached copy`,
        );
      }
      await checkout(target, ref, options.signal);
      return target;
    }
    options.onProgress?.(`Fetching buildpack ${reference.text}`);
    await mkdir(options.cacheDir, { recursive: true });
    const staging = `${target}.partial-${randomBytes(4).toString("hex")}`;
    try {
      const url = reference.url.startsWith("/") ? `file://${reference.url}` : reference.url;
      await git(undefined, options.signal).clone(url, staging, ["--quiet", "--no-checkout"]);
      await checkout(staging, ref, options.signal);
      await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
        // Another process fetched it meanwhile: theirs is as good as ours.
        if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
        await rm(staging, { recursive: true, force: true });
      });
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    return target;
  } catch (error) {
    if (error instanceof BerthError) throw error;
    throw fetchFailed(reference, error);
  }
}

async function checkout(
  dir: string,
  ref: string | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const repository = git(dir, signal);
  const candidates = ref
    ? [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`, ref]
    : ["refs/remotes/origin/HEAD", "HEAD"];
  for (const candidate of candidates) {
    const commit = await repository
      .raw(["rev-parse", "--verify", "--quiet", `${candidate}^{commit}`])
      .then((output) => output.trim())
      .catch(() => "");
    if (/^[0-9a-f]{40}$/.test(commit)) {
      await repository.raw(["checkout", "--quiet", "--force", "--detach", commit]);
      await repository.raw(["clean", "-ffdxq"]);
      return;
    }
  }
  throw new Error(`ref ${ref ?? "HEAD"} is not a branch, tag or commit of this repository`);
}

async function fetchTarball(
  reference: BuildpackReference,
  target: string,
  options: FetchOptions,
): Promise<string> {
  if (await exists(join(target, "bin"))) return target;
  options.onProgress?.(`Fetching buildpack ${reference.text}`);
  await mkdir(options.cacheDir, { recursive: true });
  const staging = `${target}.partial-${randomBytes(4).toString("hex")}`;
  try {
    let body: NodeJS.ReadableStream;
    if (reference.url.startsWith("file://")) {
      body = createReadStream(fileURLToPath(reference.url));
    } else {
      const response = await fetch(reference.url, { ...(options.signal ? { signal: options.signal } : {}) });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} ${response.statusText}`);
      body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
    }
    await pipeline(body, createGunzip(), tar.extract(staging, { readable: true, writable: true }));
    // Archives of a repository (GitHub's) hold one top directory; buildpack tarballs hold bin/ at the top.
    let root = staging;
    if (!(await exists(join(staging, "bin")))) {
      const entries = await readdir(staging, { withFileTypes: true });
      const only = entries.length === 1 ? entries[0] : undefined;
      if (only?.isDirectory()) root = join(staging, only.name);
    }
    await rename(root, target).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    });
    await rm(staging, { recursive: true, force: true });
    return target;
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw fetchFailed(reference, error);
  }
}

/** bin/detect and bin/compile must exist and be executable; bin/release is optional but must run if present. */
async function checkScripts(reference: BuildpackReference, dir: string): Promise<void> {
  for (const script of ["detect", "compile", "release"]) {
    const path = join(dir, "bin", script);
    const info = await stat(path).catch(() => undefined);
    if (!info) {
      if (script === "release") continue;
      throw new BerthError(
        "BUILD_FAILED",
        `Buildpack ${reference.text} has no bin/${script}; it is not a Heroku buildpack (v2a).`,
        { details: { buildpack: reference.text, script } },
      );
    }
    const executable = await access(path, constants.X_OK).then(
      () => (info.mode & 0o111) !== 0,
      () => false,
    );
    if (!info.isFile() || !executable) {
      throw new BerthError(
        "BUILD_FAILED",
        `Buildpack ${reference.text}: bin/${script} is not executable (mode ${(info.mode & 0o777).toString(8)}). Make it executable (git update-index --chmod=+x bin/${script}, or chmod +x) and try again.`,
        { details: { buildpack: reference.text, script } },
      );
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
