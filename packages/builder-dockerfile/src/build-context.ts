import type { Dirent } from "node:fs";
import { lstat, readdir, readFile, readlink, realpath } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { PassThrough } from "node:stream";
import dockerignore from "@balena/dockerignore";
import { BerthError } from "@berth/core";
import { pack } from "tar-fs";

/**
 * The build context: every file of the source that `.dockerignore` keeps, as a tar stream for the engine.
 * Everything is checked before the first byte is packed, so a refused source sends nothing to the engine.
 */
export interface ContextArchive {
  /** Paths relative to the source root, parents before children, as they go into the tar. */
  entries: string[];
  /** Packs the entries; call once. */
  pack(): PassThrough;
}

const DOCKERIGNORE = ".dockerignore";

function isInside(root: string, path: string): boolean {
  const fromRoot = relative(root, path);
  return (
    fromRoot === "" || (!fromRoot.startsWith(`..${sep}`) && fromRoot !== ".." && !fromRoot.startsWith(sep))
  );
}

/** A symlink may point anywhere inside the source; one that leaves it would let a build read the host. */
async function assertSymlinkInside(root: string, relativePath: string): Promise<void> {
  const absolute = join(root, relativePath);
  const target = await readlink(absolute);
  const refuse = (): never => {
    throw new BerthError(
      "INVALID_SOURCE",
      `The source has a symlink ${relativePath} pointing outside it (to ${target}). ` +
        `Replace the link with the file itself, point it inside the source, or list it in ${DOCKERIGNORE}.`,
      { details: { path: relativePath, target } },
    );
  };
  if (!isInside(root, resolve(dirname(absolute), target))) refuse();
  // A link to an inside link that leaves the source: follow the whole chain when it resolves.
  const resolved = await realpath(absolute).catch(() => undefined);
  if (resolved !== undefined && !isInside(root, resolved)) refuse();
}

/** The literal start of a pattern, up to its first wildcard: what a path must share to possibly match it. */
function literalPrefix(pattern: string): string {
  const wildcard = pattern.search(/[*?[\\]/);
  return wildcard === -1 ? pattern : pattern.slice(0, wildcard);
}

function cleanPattern(line: string): string {
  return line
    .trim()
    .replace(/^\/+/, "")
    .replace(/^(\.\/)+/, "");
}

/**
 * Lists the build context of `dir` and refuses what must not reach the engine: symlinks that leave the
 * source, and special files (devices, FIFOs). The Dockerfile and `.dockerignore` are always sent, as the
 * docker CLI does, even when `.dockerignore` lists them.
 */
export async function createContextArchive(dir: string, dockerfilePath: string): Promise<ContextArchive> {
  const root = await realpath(dir);
  for (const always of [DOCKERIGNORE, dockerfilePath]) {
    const stats = await lstat(join(root, always)).catch(() => undefined);
    if (stats?.isSymbolicLink()) await assertSymlinkInside(root, always);
    // A symlinked directory on the way could lead there too: the file read must really be inside.
    const resolved = await realpath(join(root, always)).catch(() => undefined);
    if (resolved !== undefined && !isInside(root, resolved)) {
      throw new BerthError(
        "INVALID_SOURCE",
        `The source's ${always} resolves outside the source through a symlink. Keep it inside the source.`,
        { details: { path: always } },
      );
    }
  }
  const dockerignoreText = await readFile(join(root, DOCKERIGNORE), "utf8").catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  });
  const alwaysSent = new Set([DOCKERIGNORE, dockerfilePath]);
  const patterns = dockerignoreText
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"));
  // The package is CommonJS whose types declare only a default export; Node hands it over under `default` too.
  const matcher = dockerignore.default({ ignorecase: false }).add(patterns);
  const exceptions = patterns
    .filter((line) => line.trim().startsWith("!"))
    .map((line) => cleanPattern(line.trim().slice(1)));
  for (const path of alwaysSent) exceptions.push(path);

  // An excluded directory is still walked when an exception could re-include something below it.
  const mayHoldException = (path: string): boolean =>
    exceptions.some((exception) => {
      if (exception.includes("**")) return true;
      const prefix = literalPrefix(exception);
      return prefix.startsWith(`${path}/`) || `${path}/`.startsWith(prefix);
    });

  const entries: string[] = [];
  const walk = async (relativeDir: string): Promise<void> => {
    const children: Dirent[] = await readdir(join(root, relativeDir), { withFileTypes: true });
    children.sort((left, right) => (left.name < right.name ? -1 : left.name > right.name ? 1 : 0));
    for (const child of children) {
      const path = relativeDir ? `${relativeDir}/${child.name}` : child.name;
      const excluded = !alwaysSent.has(path) && matcher.ignores(path);
      if (child.isDirectory()) {
        if (!excluded) entries.push(path);
        if (!excluded || mayHoldException(path)) await walk(path);
        continue;
      }
      if (excluded) continue;
      if (child.isSymbolicLink()) {
        await assertSymlinkInside(root, path);
        entries.push(path);
      } else if (child.isFile()) {
        entries.push(path);
      } else if (!child.isSocket()) {
        throw new BerthError(
          "INVALID_SOURCE",
          `The source has a special file ${path} (a device or FIFO) that cannot be sent to a build. ` +
            `Remove it or list it in ${DOCKERIGNORE}.`,
          { details: { path } },
        );
      }
    }
  };
  await walk("");

  return {
    entries,
    pack: () => {
      const tar = pack(root, {
        entries,
        // Directories are listed entry by entry above; stop tar-fs from adding their children again.
        ignore: () => true,
        // Owner ids of the checkout mean nothing in the image, and would defeat the layer cache across users.
        map: (header) => ({ ...header, uid: 0, gid: 0 }),
      });
      // tar-fs hands out a streamx stream; the engine client wants a Node stream.
      const stream = new PassThrough();
      tar.on("error", (error: Error) => stream.destroy(error));
      tar.pipe(stream);
      return stream;
    },
  };
}
