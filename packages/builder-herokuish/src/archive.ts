import { lstatSync } from "node:fs";
import { posix } from "node:path";
import tar from "tar-fs";
import type { Pack } from "tar-stream";

/** One piece of a build container's filesystem, sent in a single tar stream. */
export interface DirectoryPart {
  /** Host directory whose contents are sent. */
  from: string;
  /** Where its contents land, relative to `/` (`app`, `tmp/buildpacks/1-static`). */
  to: string;
  uid: number;
  /** Paths relative to `from` to leave out. */
  ignore?: (relativePath: string, isDirectory: boolean) => boolean;
}

export interface FilePart {
  to: string;
  content: string;
  mode: number;
  uid: number;
}

/**
 * Packs host directories and generated files into one tar stream, for one `putArchive`. Ownership is set in
 * the headers (the engine keeps it), so nothing needs a `chown -R` inside the container.
 */
export function packParts(directories: DirectoryPart[], files: FilePart[] = []): NodeJS.ReadableStream {
  if (directories.length === 0) throw new Error("packParts needs at least one directory");
  const packFrom = (index: number, into: Pack | undefined): Pack => {
    const part = directories[index] as DirectoryPart;
    const last = index === directories.length - 1;
    return tar.pack(part.from, {
      ...(into ? { pack: into } : {}),
      finalize: false,
      finish: (pack: Pack) => {
        if (!last) {
          packFrom(index + 1, pack);
          return;
        }
        for (const file of files) {
          pack.entry(
            { name: file.to, mode: file.mode, uid: file.uid, gid: file.uid, mtime: new Date() },
            file.content,
          );
        }
        pack.finalize();
      },
      ignore: (name: string) => {
        if (!part.ignore) return false;
        const relative = posix.relative(part.from, name);
        if (relative === "" || relative.startsWith("..")) return false;
        let isDirectory = false;
        try {
          isDirectory = lstatSync(name).isDirectory();
        } catch {
          isDirectory = false;
        }
        return part.ignore(relative, isDirectory);
      },
      map: (header) => {
        header.name = posix.join(part.to, header.name);
        header.uid = part.uid;
        header.gid = part.uid;
        return header;
      },
    } as tar.PackOptions) as unknown as Pack;
  };
  return packFrom(0, undefined) as unknown as NodeJS.ReadableStream;
}
