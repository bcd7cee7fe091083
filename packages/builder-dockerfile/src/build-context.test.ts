import { execFileSync } from "node:child_process";
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { isBerthError } from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { createContextArchive } from "./build-context.js";

const directories: string[] = [];

async function source(files: Record<string, string>, links: Record<string, string> = {}): Promise<string> {
  const dir = await temporaryDirectory("berth-bdf-context-");
  directories.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  for (const [name, target] of Object.entries(links)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await symlink(target, join(dir, name));
  }
  return dir;
}

afterEach(async () => {
  for (const dir of directories.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("createContextArchive", () => {
  it("lists what .dockerignore keeps, re-includes exceptions, and always sends the Dockerfile", async () => {
    const dir = await source({
      Dockerfile: "FROM x\n",
      ".dockerignore":
        "# comment\n*.md\nnode_modules\nbuild/**\n!build/keep/*.txt\nDockerfile\n.dockerignore\n",
      "README.md": "",
      "src/app.js": "",
      "src/notes.md": "",
      "node_modules/dep/index.js": "",
      "build/out.bin": "",
      "build/keep/a.txt": "",
    });
    const archive = await createContextArchive(dir, "Dockerfile");
    expect(archive.entries.sort()).toEqual(
      // `*.md` matches at the root only, and `build/**` leaves the directory itself, as Docker does.
      [
        ".dockerignore",
        "Dockerfile",
        "build",
        "build/keep/a.txt",
        "src",
        "src/app.js",
        "src/notes.md",
      ].sort(),
    );
  });

  it("packs the entries as a tar stream", async () => {
    const dir = await source({ Dockerfile: "FROM x\n", "a.txt": "hello" });
    const archive = await createContextArchive(dir, "Dockerfile");
    const chunks: Buffer[] = [];
    for await (const chunk of archive.pack()) chunks.push(chunk as Buffer);
    const tar = Buffer.concat(chunks);
    expect(tar.length % 512).toBe(0);
    expect(tar.toString("latin1")).toContain("a.txt");
    expect(tar.toString("latin1")).toContain("hello");
  });

  it("refuses symlinks that leave the source, unless ignored", async () => {
    const outside = await source({ "secret.txt": "s" });
    for (const target of ["/etc/passwd", "../../outside", join(outside, "secret.txt"), "inner/../../../x"]) {
      const dir = await source({ Dockerfile: "FROM x\n" }, { "sub/link": target });
      const error = await createContextArchive(dir, "Dockerfile").catch((caught: unknown) => caught);
      expect(isBerthError(error, "INVALID_SOURCE"), target).toBe(true);
    }
    const ignored = await source(
      { Dockerfile: "FROM x\n", ".dockerignore": "sub\n" },
      { "sub/link": "/etc" },
    );
    expect((await createContextArchive(ignored, "Dockerfile")).entries).not.toContain("sub/link");
  });

  it("refuses a chain of links that ends outside, and accepts links that stay inside", async () => {
    const chained = await source(
      { Dockerfile: "FROM x\n", ".dockerignore": "hop\n" },
      { hop: "/etc", link: "hop" },
    );
    const error = await createContextArchive(chained, "Dockerfile").catch((caught: unknown) => caught);
    expect(isBerthError(error, "INVALID_SOURCE")).toBe(true);
    const inside = await source(
      { Dockerfile: "FROM x\n", "data/a.txt": "" },
      { link: "data/a.txt", dirlink: "data" },
    );
    expect((await createContextArchive(inside, "Dockerfile")).entries).toEqual(
      expect.arrayContaining(["link", "dirlink", "data/a.txt"]),
    );
  });

  it("refuses a Dockerfile reached through a directory link that leaves the source", async () => {
    const outside = await source({ Dockerfile: "FROM x\n" });
    const dir = await source({}, { docker: outside });
    const error = await createContextArchive(dir, "docker/Dockerfile").catch((caught: unknown) => caught);
    expect(isBerthError(error, "INVALID_SOURCE")).toBe(true);
  });

  it("refuses FIFOs, which would hang a build", async () => {
    const dir = await source({ Dockerfile: "FROM x\n" });
    execFileSync("mkfifo", [join(dir, "pipe")]);
    const error = await createContextArchive(dir, "Dockerfile").catch((caught: unknown) => caught);
    expect(isBerthError(error, "INVALID_SOURCE")).toBe(true);
  });
});
