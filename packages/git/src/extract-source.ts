import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import { BerthError, describeError, type Output } from "@berth/core";
import { gitEnvironment, runGit } from "./run-git.js";

export interface ExtractSourceOptions {
  /** Where the temporary directory is made; default the system temp dir. */
  workDir?: string;
  /** Extra git environment, e.g. the quarantine variables of a push still in pre-receive. */
  env?: Record<string, string>;
  /** Where notices about skipped submodules go. */
  output?: Output;
  /**
   * URL schemes submodules may be fetched with; default `https`, `http`, `ssh` and `git`. `file` (and local
   * paths) is off by default because it would let an app's source read any repository on the server.
   */
  submoduleProtocols?: string[];
  /** How long one submodule fetch may take; default 2 minutes. */
  submoduleTimeoutMs?: number;
  /** How deep nested submodules are followed; default 3. */
  submoduleDepth?: number;
}

export interface ExtractedSource {
  /** A clean directory: the tree at `rev`, no `.git`, export-ignored paths left out. */
  dir: string;
  /** The full commit id that was extracted. */
  rev: string;
  /** Removes the directory; safe to call twice. */
  remove(): Promise<void>;
}

const DEFAULT_SUBMODULE_PROTOCOLS = ["https", "http", "ssh", "git"];
const COMMIT = /^[0-9a-f]{40}$/;

/**
 * Writes the tree of `rev` in `repoDir` into a fresh directory the way a build should see it: `git archive`
 * (so `.gitattributes export-ignore` is honoured), then each submodule that can be fetched, at its recorded
 * commit. The caller removes it (`remove()`), whatever happens to the build.
 */
export async function extractSource(
  repoDir: string,
  rev: string,
  options: ExtractSourceOptions = {},
): Promise<ExtractedSource> {
  const env = options.env ?? {};
  if (typeof rev !== "string" || rev.startsWith("-") || !/^[A-Za-z0-9._/^~-]{1,200}$/.test(rev)) {
    throw new BerthError("INVALID_REF", `Invalid revision ${JSON.stringify(rev)}.`);
  }
  // One process answers both questions: which commit, and does it have a .gitmodules (then submodules matter).
  const answer = await runGit(["cat-file", "--batch-check"], {
    cwd: repoDir,
    env,
    input: `${rev}^{commit}\n${rev}:.gitmodules\n`,
  });
  const [commitLine, gitmodulesLine] = answer.stdout.split("\n");
  const commitMatch = /^([0-9a-f]{40}) commit /.exec(commitLine ?? "");
  if (!commitMatch?.[1]) {
    throw new BerthError(
      "INVALID_REF",
      `Revision ${JSON.stringify(rev)} is not a commit of this repository.`,
    );
  }
  const resolved = commitMatch[1];
  const hasGitmodules = / blob /.test(gitmodulesLine ?? "");
  const workDir = options.workDir ?? tmpdir();
  await mkdir(workDir, { recursive: true });
  const dir = await mkdtemp(join(workDir, "berth-source-"));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await archiveInto(repoDir, resolved, dir, env);
    if (hasGitmodules)
      await extractSubmodules(repoDir, resolved, dir, env, options, options.submoduleDepth ?? 3);
  } catch (error) {
    await remove();
    throw error;
  }
  return { dir, rev: resolved, remove };
}

/** `git archive REV | tar -x -C DIR`, streamed. */
function archiveInto(repoDir: string, rev: string, dir: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const archive = spawn("git", ["archive", "--format=tar", rev], {
      cwd: repoDir,
      env: gitEnvironment(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tar = spawn("tar", ["-x", "--no-same-owner", "-f", "-", "-C", dir], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    archive.stdout.pipe(tar.stdin);
    let errors = "";
    archive.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      errors += chunk;
    });
    tar.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      errors += chunk;
    });
    tar.stdin.on("error", () => {
      // tar died early; its exit code says why.
    });
    let pending = 2;
    let failed = false;
    const done = (name: string) => (code: number | null) => {
      if (code !== 0 && !failed) {
        failed = true;
        reject(
          new BerthError(
            "INVALID_SOURCE",
            `Could not extract ${rev.slice(0, 7)} (${name} exited ${code}): ${errors.trim()}`,
          ),
        );
      }
      pending -= 1;
      if (pending === 0 && !failed) resolvePromise();
    };
    archive.on("error", reject);
    tar.on("error", reject);
    archive.on("close", done("git archive"));
    tar.on("close", done("tar"));
  });
}

interface Submodule {
  path: string;
  url: string;
  commit: string;
}

async function listSubmodules(
  repoDir: string,
  rev: string,
  env: Record<string, string>,
): Promise<Submodule[]> {
  const tree = await runGit(["ls-tree", "-r", "-z", "--full-tree", rev], { cwd: repoDir, env });
  const gitlinks = new Map<string, string>();
  for (const entry of tree.stdout.split("\0")) {
    const match = /^160000 commit ([0-9a-f]{40})\t(.+)$/s.exec(entry);
    if (match?.[1] && match[2]) gitlinks.set(match[2], match[1]);
  }
  if (gitlinks.size === 0) return [];
  const config = await runGit(
    ["config", "-z", "--blob", `${rev}:.gitmodules`, "--get-regexp", "^submodule\\..*\\.(path|url)$"],
    { cwd: repoDir, env, allowedExitCodes: [1, 128] },
  );
  const byName = new Map<string, { path?: string; url?: string }>();
  for (const entry of config.stdout.split("\0")) {
    const newline = entry.indexOf("\n");
    if (newline === -1) continue;
    const key = entry.slice(0, newline);
    const value = entry.slice(newline + 1);
    const match = /^submodule\.(.+)\.(path|url)$/s.exec(key);
    if (!match?.[1] || !match[2]) continue;
    const record = byName.get(match[1]) ?? {};
    record[match[2] as "path" | "url"] = value;
    byName.set(match[1], record);
  }
  const submodules: Submodule[] = [];
  for (const record of byName.values()) {
    const commit = record.path === undefined ? undefined : gitlinks.get(record.path);
    if (record.path && record.url && commit && COMMIT.test(commit)) {
      submodules.push({ path: record.path, url: record.url, commit });
    }
  }
  return submodules;
}

function urlProtocol(url: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (scheme?.[1]) return scheme[1].toLowerCase();
  if (url.startsWith("/")) return "file";
  // scp-like `user@host:path` is ssh; anything else (relative URLs) has no meaning outside the pusher's server.
  if (/^[^/:]+:/.test(url)) return "ssh";
  return undefined;
}

async function extractSubmodules(
  repoDir: string,
  rev: string,
  dir: string,
  env: Record<string, string>,
  options: ExtractSourceOptions,
  depth: number,
): Promise<void> {
  const submodules = await listSubmodules(repoDir, rev, env);
  if (submodules.length === 0) return;
  const allowed = options.submoduleProtocols ?? DEFAULT_SUBMODULE_PROTOCOLS;
  for (const submodule of submodules) {
    const target = resolve(dir, submodule.path);
    const inside = relative(dir, target);
    if (inside === "" || inside.startsWith(`..${sep}`) || inside === "..") continue;
    const protocol = urlProtocol(submodule.url);
    if (!protocol || !allowed.includes(protocol) || submodule.url.startsWith("-")) {
      options.output?.warn(
        `Submodule ${submodule.path} not fetched: ${JSON.stringify(submodule.url)} is not an allowed URL (${allowed.join(", ")}).`,
      );
      continue;
    }
    if (depth <= 0) {
      options.output?.warn(`Submodule ${submodule.path} not fetched: submodules nest too deep.`);
      continue;
    }
    const clone = await mkdtemp(join(options.workDir ?? tmpdir(), "berth-submodule-"));
    try {
      const protocolConfig = [
        "-c",
        "protocol.allow=never",
        ...allowed.flatMap((name) => ["-c", `protocol.${name}.allow=always`]),
      ];
      await runGit([...protocolConfig, "clone", "--bare", "--quiet", "--", submodule.url, clone], {
        env: { GIT_SSH_COMMAND: "ssh -o BatchMode=yes" },
        timeoutMs: options.submoduleTimeoutMs ?? 120_000,
      });
      await mkdir(target, { recursive: true });
      await archiveInto(clone, submodule.commit, target, {});
      await extractSubmodules(clone, submodule.commit, target, {}, options, depth - 1);
      options.output?.detail(`Submodule ${submodule.path} at ${submodule.commit.slice(0, 7)}`);
    } catch (error) {
      options.output?.warn(`Submodule ${submodule.path} not fetched: ${describeError(error)}`);
    } finally {
      await rm(clone, { recursive: true, force: true });
    }
  }
}
