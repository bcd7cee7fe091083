import { createWriteStream, lstatSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { BerthError, describeError } from "@berth/core";
import Docker from "dockerode";
import tar from "tar-fs";
import { removeContainer } from "./docker.js";
import { isSlugIgnored, parseSlugIgnore } from "./slug.js";

export interface ExportSlugOptions {
  /** A buildpack image built by this package (`berth/<app>:v<version>`). */
  image: string;
  /** Where the `.tgz` is written. */
  destination: string;
  docker?: Docker;
}

/**
 * Writes the slug of a buildpack image: a gzipped tar of `/app` with Heroku's layout (`./app/...`), leaving
 * out `.git` and whatever the app's `.slugignore` names.
 */
export async function exportSlug(options: ExportSlugOptions): Promise<{ destination: string }> {
  const docker = options.docker ?? new Docker({ socketPath: "/var/run/docker.sock" });
  const scratch = await mkdtemp(join(tmpdir(), "berth-slug-"));
  let container: Docker.Container | undefined;
  try {
    container = await docker.createContainer({ Image: options.image, Entrypoint: ["/bin/true"], Cmd: [] });
    const archive = (await container.getArchive({ path: "/app" })) as NodeJS.ReadableStream;
    await pipeline(archive, tar.extract(scratch));
    const root = join(scratch, "app");
    const ignore = parseSlugIgnore(await readFile(join(root, ".slugignore"), "utf8").catch(() => ""));
    await pipeline(
      tar.pack(scratch, {
        entries: ["app"],
        ignore: (name: string) => {
          const relative = posix.relative(root, name);
          if (relative === "" || relative.startsWith("..")) return false;
          if (relative === ".git" || relative.startsWith(".git/")) return true;
          return isSlugIgnored(ignore, relative, isDirectorySync(name));
        },
        map: (header) => {
          header.name = `./${header.name}`;
          return header;
        },
      }),
      createGzip(),
      createWriteStream(options.destination),
    );
    return { destination: options.destination };
  } catch (error) {
    throw new BerthError(
      "BUILD_FAILED",
      `Could not export the slug of ${options.image}: ${describeError(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    if (container) await removeContainer(container);
    await rm(scratch, { recursive: true, force: true });
  }
}

function isDirectorySync(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}
