import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorld, type LiveRun, type World, waitFor } from "./test/world.js";

let world: World;
/** Apps whose deploys are being watched: how many run at once, and the most that ever did. */
const watched = new Map<string, { active: number; max: number; release?: () => boolean }>();
let globalActive = 0;
let globalMax = 0;

beforeAll(async () => {
  world = await createWorld();
  world.platform.hooks.receive.tapPromise("test-watch", async ({ app }) => {
    const watch = watched.get(app.name);
    if (!watch) return;
    watch.active += 1;
    globalActive += 1;
    watch.max = Math.max(watch.max, watch.active);
    globalMax = Math.max(globalMax, globalActive);
    try {
      // Hold the deploy until the test's condition holds (the other push is waiting, or the other app is
      // deploying too), so overlap is observed rather than hoped for.
      if (watch.release) await waitFor(watch.release, 20_000);
    } finally {
      watch.active -= 1;
      globalActive -= 1;
    }
  });
});

afterAll(async () => {
  await world?.close();
});

describe("concurrent pushes", () => {
  it("serializes two pushes to one app and keeps the ref and the deployed rev in agreement", async () => {
    const app = "contended";
    const base = await world.repo({ "body.txt": "base\n" });
    expect((await world.git(["push", world.url("http", app), "main"], { cwd: base })).code).toBe(0);
    const left = join(world.root, "left");
    const right = join(world.root, "right");
    await world.git(["clone", "-q", world.url("http", app), left]);
    await world.git(["clone", "-q", world.url("http", app), right]);
    const leftRev = await world.commit(left, { "body.txt": "left\n" });
    const rightRev = await world.commit(right, { "body.txt": "right\n" });

    let pushes: LiveRun[] = [];
    watched.set(app, {
      active: 0,
      max: 0,
      release: () => pushes.some((push) => push.stderr().includes("Waiting for another push to contended")),
    });
    pushes = [
      world.gitLive(["push", world.url("http", app), "main"], { cwd: left }),
      world.gitLive(["push", world.url("ssh", app), "main"], { cwd: right, transport: "ssh" }),
    ];
    const [leftResult, rightResult] = await Promise.all(pushes.map((push) => push.done));
    const stderr = `${leftResult?.stderr}\n${rightResult?.stderr}`;
    expect(stderr).toContain("Waiting for another push to contended");
    expect(watched.get(app)?.max).toBe(1);

    // Both started from the same base: exactly one wins, the other is told why and deployed nothing.
    const winners = [leftResult, rightResult].filter((result) => result?.code === 0);
    expect(winners, stderr).toHaveLength(1);
    expect(stderr).toContain("changed while you pushed");
    const deployed = (await world.platform.releases.current(app))?.source.rev;
    const ref = await world.remoteRef("http", app);
    expect(ref).toBe(deployed);
    expect([leftRev, rightRev]).toContain(deployed);
    const releases = await world.platform.releases.list(app);
    expect(releases.map((release) => release.status)).toEqual(["succeeded", "succeeded"]);
  });

  it("lets the loser push again after fetching, and then deploys it", async () => {
    const app = "contended";
    watched.delete(app);
    const dir = join(world.root, "again");
    await world.git(["clone", "-q", world.url("ssh", app), dir], { transport: "ssh" });
    const rev = await world.commit(dir, { "body.txt": "after\n" });
    const push = await world.git(["push", world.url("ssh", app), "main"], { cwd: dir, transport: "ssh" });
    expect(push.code, push.stderr).toBe(0);
    expect((await world.platform.releases.current(app))?.source.rev).toBe(rev);
  });

  it("deploys two apps in parallel", async () => {
    globalMax = 0;
    // A latch: once both were in at the same time, neither waits any longer.
    let overlapped = false;
    const both = () => {
      overlapped ||= globalActive >= 2;
      return overlapped;
    };
    watched.set("parallel-one", { active: 0, max: 0, release: both });
    watched.set("parallel-two", { active: 0, max: 0, release: both });
    const one = await world.repo({ "body.txt": "one\n" });
    const two = await world.repo({ "body.txt": "two\n" });
    const results = await Promise.all([
      world.git(["push", world.url("http", "parallel-one"), "main"], { cwd: one }),
      world.git(["push", world.url("ssh", "parallel-two"), "main"], { cwd: two, transport: "ssh" }),
    ]);
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    expect(globalMax).toBe(2);
    expect(await world.proxy.fetch("parallel-one")).toEqual({ status: 200, body: "one" });
    expect(await world.proxy.fetch("parallel-two")).toEqual({ status: 200, body: "two" });
  });
});
