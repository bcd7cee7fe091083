import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extractSource } from "./extract-source.js";
import { createWorld, type Transport, type World } from "./test/world.js";
import { removeLeftovers } from "./work-dirs.js";

let world: World;
/** What each deploy's source directory looked like, by app. */
const seen = new Map<string, { dir: string; files: string[]; big?: number }>();

beforeAll(async () => {
  world = await createWorld();
  world.platform.hooks.receive.tapPromise("test-inspect", async ({ app, source }) => {
    const files = (await readdir(source.dir, { recursive: true })).map(String).sort();
    const big = await stat(join(source.dir, "big.bin")).then(
      (info) => info.size,
      () => undefined,
    );
    seen.set(app.name, { dir: source.dir, files, ...(big === undefined ? {} : { big }) });
  });
});

afterAll(async () => {
  await world?.close();
});

describe("source extraction on push", () => {
  it("hands the build a clean tree: no .git, export-ignore honoured, submodules initialised", async () => {
    const library = await world.repo({ "lib.txt": "from the submodule\n" });
    const dir = await world.repo({
      "body.txt": "with submodule\n",
      ".gitattributes": "secret.txt export-ignore\n",
      "secret.txt": "do not ship\n",
    });
    const add = await world.git(
      ["-c", "protocol.file.allow=always", "submodule", "add", "-q", library, "vendor/lib"],
      {
        cwd: dir,
      },
    );
    expect(add.code, add.stderr).toBe(0);
    await world.commit(dir, {}, "add submodule");
    const push = await world.git(["push", world.url("http", "with-submodule"), "main"], { cwd: dir });
    expect(push.code, push.stderr).toBe(0);
    const source = seen.get("with-submodule");
    expect(source?.files).toEqual([
      ".gitattributes",
      ".gitmodules",
      "body.txt",
      "vendor",
      "vendor/lib",
      "vendor/lib/lib.txt",
    ]);
    expect(push.stderr).toContain("Submodule vendor/lib at");
    // Extracted to a private tmpfs directory by default, and removed before the push is answered.
    expect(dirname(source?.dir ?? "")).toBe(`/dev/shm/berth-git-${process.getuid?.()}`);
    expect(existsSync(source?.dir ?? "/")).toBe(false);
  });

  it("skips a submodule whose URL is not allowed, saying so, and still deploys", async () => {
    const workDir = await mkdtemp(join(tmpdir(), "berth-git-test-work-"));
    const strict = await createWorld({ submoduleProtocols: ["https"], workDir });
    let extractedTo = "";
    strict.platform.hooks.receive.tap("test-inspect", ({ source }) => {
      extractedTo = source.dir;
    });
    try {
      const library = await strict.repo({ "lib.txt": "x\n" });
      const dir = await strict.repo({ "body.txt": "strict\n" });
      await strict.git(["-c", "protocol.file.allow=always", "submodule", "add", "-q", library, "lib"], {
        cwd: dir,
      });
      await strict.commit(dir, {}, "add submodule");
      const push = await strict.git(["push", strict.url("ssh", "strict-sub"), "main"], {
        cwd: dir,
        transport: "ssh",
      });
      expect(push.code, push.stderr).toBe(0);
      expect(push.stderr).toContain("Submodule lib not fetched");
      expect(dirname(extractedTo)).toBe(workDir);
    } finally {
      await strict.close();
      await rm(workDir, { recursive: true, force: true });
    }
  });

  it("removes the source after a failed deploy too", async () => {
    const dir = await world.repo({ "body.txt": "x\n", FAIL_BUILD: "no\n" });
    const push = await world.git(["push", world.url("http", "failing-source"), "main"], { cwd: dir });
    expect(push.code).not.toBe(0);
    expect(seen.get("failing-source")?.dir).toBeDefined();
    expect(existsSync(seen.get("failing-source")?.dir ?? "/")).toBe(false);
  });

  it.each<Transport>(["http", "ssh"])("pushes and deploys a 50 MB file over %s", async (transport) => {
    const app = `big-${transport}`;
    const dir = await world.repo({ "body.txt": "big\n" });
    const content = randomBytes(50 * 1024 * 1024);
    await writeFile(join(dir, "big.bin"), content);
    await world.commit(dir, {}, "big file");
    // The server runs in this process: had it buffered the request body, the memory it holds (heap and buffers,
    // measured after collecting garbage) would grow by the pack's size, 50 MB of incompressible data.
    const collect = (globalThis as { gc?: () => void }).gc;
    if (!collect) throw new Error("run with --expose-gc (see vitest.config.ts)");
    const held = () => {
      collect();
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.arrayBuffers;
    };
    const baseline = held();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, held());
    }, 50);
    const push = await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport });
    clearInterval(sampler);
    expect(push.code, push.stderr).toBe(0);
    expect(seen.get(app)?.big).toBe(content.length);
    // Buffering the body whole measured over 100 MB here; streaming stays well under 30 MB.
    expect(peak - baseline).toBeLessThan(30 * 1024 * 1024);
    const clone = join(world.root, `clone-${app}`);
    const cloned = await world.git(["clone", "-q", world.url(transport, app), clone], { transport });
    expect(cloned.code, cloned.stderr).toBe(0);
    expect((await readFile(join(clone, "big.bin"))).equals(content)).toBe(true);
  });
});

describe("the HTTP handler in another server", () => {
  it("serves under a base path and reads gzip-compressed request bodies", async () => {
    const dir = await world.repo({ "body.txt": "mounted\n" });
    // Many branches make the clone's want list long enough for git to gzip it.
    for (let index = 0; index < 200; index += 1) {
      await world.git(["branch", `topic-${index}`], { cwd: dir });
      if (index % 50 === 0) await world.commit(dir, {}, `commit ${index}`);
    }
    const handler = world.plugin.httpHandler({ basePath: "/git" });
    const encodings: string[] = [];
    const server = createServer((request, response) => {
      if (request.url === "/health") {
        response.end("ok");
        return;
      }
      encodings.push(String(request.headers["content-encoding"] ?? "identity"));
      handler(request, response);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const url = `http://admin:${world.adminToken}@127.0.0.1:${port}/git/mounted.git`;
      const push = await world.git(["push", url, "--all"], { cwd: dir });
      expect(push.code, push.stderr).toBe(0);
      const clone = await world.git(["clone", "-q", "--mirror", url, join(world.root, "mounted-mirror")]);
      expect(clone.code, clone.stderr).toBe(0);
      expect(encodings).toContain("gzip");
      const branches = await world.git(["branch", "--list", "topic-*"], {
        cwd: join(world.root, "mounted-mirror"),
      });
      expect(branches.stdout.trim().split("\n")).toHaveLength(200);
      const outside = await fetch(`http://127.0.0.1:${port}/mounted.git/info/refs?service=git-upload-pack`);
      expect(outside.status).toBe(404);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("extractSource", () => {
  it("extracts a rev, refuses option-like revisions, and removes what it made", async () => {
    const dir = await world.repo({ "a.txt": "first\n" });
    const first = (await world.git(["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
    await world.commit(dir, { "a.txt": "second\n", "b/c.txt": "deep\n" });
    const repoDir = join(dir, ".git");
    const extracted = await extractSource(repoDir, first, { workDir: join(world.root, "extract") });
    expect(extracted.rev).toBe(first);
    expect(await readdir(extracted.dir)).toEqual(["a.txt"]);
    expect(await readFile(join(extracted.dir, "a.txt"), "utf8")).toBe("first\n");
    await extracted.remove();
    expect(existsSync(extracted.dir)).toBe(false);
    const head = await extractSource(repoDir, "main", { workDir: join(world.root, "extract") });
    expect((await readdir(head.dir)).sort()).toEqual(["a.txt", "b"]);
    await head.remove();
    await expect(extractSource(repoDir, "--output=/tmp/x", {})).rejects.toThrow(/Invalid revision/);
    await expect(
      extractSource(repoDir, "no-such-branch", { workDir: join(world.root, "extract") }),
    ).rejects.toThrow(/is not a commit of this repository/);
    expect(await readdir(join(world.root, "extract"))).toEqual([]);
  });

  it("sweeps sources a killed process left behind, and only old ones with Berth's names", async () => {
    const { mkdir, utimes } = await import("node:fs/promises");
    const dir = join(world.root, "leftovers");
    for (const name of [
      "berth-source-OldOne",
      "berth-source-Young1",
      "berth-submodule-Old222",
      "not-berth-old",
    ]) {
      await mkdir(join(dir, name, "inside"), { recursive: true });
    }
    const old = new Date(Date.now() - 7 * 60 * 60 * 1000);
    for (const name of ["berth-source-OldOne", "berth-submodule-Old222", "not-berth-old"]) {
      await utimes(join(dir, name), old, old);
    }
    await removeLeftovers([dir, join(world.root, "missing")]);
    expect((await readdir(dir)).sort()).toEqual(["berth-source-Young1", "not-berth-old"]);
  });

  it("is what the plugin offers for rebuilds of an app's pushed rev", async () => {
    const dir = await world.repo({ "body.txt": "rebuild me\n" });
    expect((await world.git(["push", world.url("http", "rebuildable"), "main"], { cwd: dir })).code).toBe(0);
    const release = await world.platform.releases.current("rebuildable");
    const source = await world.plugin.extractSource("rebuildable", release?.source.rev ?? "");
    try {
      expect(await readFile(join(source.dir, "body.txt"), "utf8")).toBe("rebuild me\n");
      const rebuilt = await world.platform.deploy("rebuildable", {
        kind: "git",
        dir: source.dir,
        rev: source.rev,
      });
      expect(rebuilt.version).toBe(2);
    } finally {
      await source.remove();
    }
  });
});
