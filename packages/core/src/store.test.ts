import { spawn } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomic } from "./atomic-write.js";
import { AppLocks } from "./lock.js";
import { FileStore } from "./store.js";
import { temporaryDirectory } from "./testing/conformance.js";

// Cross-process behaviour needs a second real process; it loads the built package.
const built = new URL("../dist/index.js", import.meta.url).href;

function child(script: string): { done: Promise<number | null>; lines: AsyncIterable<string>; pid: number } {
  const process_ = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const done = new Promise<number | null>((resolve) => process_.on("exit", (code) => resolve(code)));
  process_.stdout.setEncoding("utf8");
  return { done, lines: process_.stdout, pid: process_.pid ?? 0 };
}

describe("FileStore and atomic writes", () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await temporaryDirectory();
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it("a process killed between temp write and rename leaves the previous value readable", async () => {
    const store = new FileStore(dataDir);
    await store.writeEnv("app", { VALUE: "old" });
    const path = join(dataDir, "apps", "app", "env.json");
    const { done } = child(`
      const { writeFileAtomic } = await import(${JSON.stringify(built)});
      await writeFileAtomic(${JSON.stringify(path)}, JSON.stringify({ VALUE: "new" }), {
        beforeRename: () => process.kill(process.pid, "SIGKILL"),
      });
    `);
    expect(await done).toBeNull();
    expect(await store.readEnv("app")).toEqual({ VALUE: "old" });
    // The orphaned temp file is hidden from listings and the next write still works.
    expect((await readdir(join(dataDir, "apps", "app"))).some((name) => name.endsWith(".tmp"))).toBe(true);
    await writeFileAtomic(path, JSON.stringify({ VALUE: "newer" }));
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ VALUE: "newer" });
    expect(await store.listApps()).toEqual([]);
  });

  it("settles a release once and never rewrites a settled one", async () => {
    const store = new FileStore(dataDir);
    const release = {
      app: "app",
      version: 1,
      id: "v1",
      status: "pending" as const,
      createdAt: new Date().toISOString(),
      description: "Deploy",
      artifact: { builder: "fake", image: "x" },
      config: {},
      processTypes: { web: "serve" },
      appJson: {},
      source: { kind: "dir" as const },
    };
    await store.createRelease(release);
    await expect(store.createRelease(release)).rejects.toMatchObject({ code: "INVALID_RELEASE" });
    await store.settleRelease("app", 1, "succeeded");
    await expect(store.settleRelease("app", 1, "failed")).rejects.toMatchObject({ code: "INVALID_RELEASE" });
    expect((await store.readRelease("app", 1))?.status).toBe("succeeded");
  });
});

describe("AppLocks", () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await temporaryDirectory();
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it("recovers a lock whose holder process was killed", async () => {
    const holder = child(`
      const { AppLocks } = await import(${JSON.stringify(built)});
      await new AppLocks(${JSON.stringify(dataDir)}).acquire("app", { operation: "deploy" });
      console.log("locked");
      setInterval(() => {}, 1000);
    `);
    for await (const line of holder.lines) if (line.includes("locked")) break;
    const locks = new AppLocks(dataDir);
    expect((await locks.holder("app"))?.pid).toBe(holder.pid);
    await expect(locks.acquire("app", { operation: "deploy", timeoutMs: 100 })).rejects.toMatchObject({
      code: "APP_LOCKED",
    });
    process.kill(holder.pid, "SIGKILL");
    await holder.done;
    const lock = await locks.acquire("app", { operation: "deploy", timeoutMs: 5000 });
    expect(lock.holder.pid).toBe(process.pid);
    await lock.release();
    expect(await locks.holder("app")).toBeUndefined();
  });

  it("makes a second caller wait and tells it who holds the lock", async () => {
    const locks = new AppLocks(dataDir);
    const first = await locks.acquire("app", { operation: "deploy" });
    const waitedFor: string[] = [];
    const second = locks.acquire("app", {
      operation: "scale",
      onWait: (holder) => waitedFor.push(holder.operation),
    });
    const deadline = Date.now() + 5000;
    while (waitedFor.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(waitedFor).toEqual(["deploy"]);
    await first.release();
    const lock = await second;
    expect(lock.holder.operation).toBe("scale");
    await lock.release();
  });

  it("lets an operator force an unlock", async () => {
    const locks = new AppLocks(dataDir);
    await locks.acquire("app", { operation: "deploy" });
    expect((await locks.forceUnlock("app"))?.operation).toBe("deploy");
    const lock = await locks.acquire("app", { operation: "deploy", timeoutMs: 100 });
    await lock.release();
  });
});
