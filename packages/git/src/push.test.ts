import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorld, remoteLines, type Transport, type World, waitFor } from "./test/world.js";

let world: World;

beforeAll(async () => {
  world = await createWorld();
  // A gate in the pipeline: a deploy of an app named `live-*` says so and waits until the test lets it go.
  world.platform.hooks.receive.tapPromise("test-gate", async ({ app, output }) => {
    const gate = gates.get(app.name);
    if (!gate) return;
    output.step("Gate reached");
    await gate;
  });
});

afterAll(async () => {
  await world?.close();
});

const gates = new Map<string, Promise<void>>();

async function currentRev(app: string): Promise<string | undefined> {
  return (await world.platform.releases.current(app))?.source.rev;
}

describe.each<Transport>(["http", "ssh"])("push over %s", (transport) => {
  it("creates the app on the first push, deploys it, and deploys the next push", async () => {
    const app = `first-${transport}`;
    const dir = await world.repo({ "body.txt": "hello one\n" });
    const first = await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport });
    expect(first.code, first.stderr).toBe(0);
    expect(await world.platform.apps.exists(app)).toBe(true);
    expect(await world.proxy.fetch(app)).toEqual({ status: 200, body: "hello one" });

    const rev = await world.commit(dir, { "body.txt": "hello two\n" });
    const second = await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport });
    expect(second.code, second.stderr).toBe(0);
    expect(await currentRev(app)).toBe(rev);
    expect(await world.proxy.fetch(app)).toEqual({ status: 200, body: "hello two" });
    expect(await world.remoteRef(transport, app)).toBe(rev);

    const steps = remoteLines(second.stderr).filter((line) => line.startsWith("-----> "));
    const order = [
      "Building",
      "Starting v2",
      "Checking new instances",
      "Switching traffic",
      "Retiring v1",
      "Done",
    ];
    const positions = order.map((word) => steps.findIndex((line) => line.includes(word)));
    expect(
      positions.every((position) => position >= 0),
      steps.join("\n"),
    ).toBe(true);
    expect([...positions].sort((left, right) => left - right)).toEqual(positions);
  });

  it("streams build output to the pusher while the deploy runs", async () => {
    const app = `live-${transport}`;
    let open: () => void = () => {};
    gates.set(
      app,
      new Promise<void>((resolve) => {
        open = resolve;
      }),
    );
    const dir = await world.repo({ "body.txt": "live\n" });
    const push = world.gitLive(["push", "--progress", world.url(transport, app), "main"], {
      cwd: dir,
      transport,
    });
    // The pusher sees the step while the deploy is still held at the gate: output is not buffered to the end.
    const seen = await waitFor(() => push.stderr().includes("remote: -----> Gate reached"), 30_000);
    const releasesWhileHeld = await world.platform.releases.list(app);
    open();
    const result = await push.done;
    expect(seen, push.stderr()).toBe(true);
    expect(releasesWhileHeld).toEqual([]);
    expect(result.code, result.stderr).toBe(0);
  });

  it("rejects a push whose build fails and leaves the ref where it was", async () => {
    const app = `failing-${transport}`;
    const dir = await world.repo({ "body.txt": "good\n" });
    const good = await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport });
    expect(good.code, good.stderr).toBe(0);
    const goodRev = await currentRev(app);

    await world.commit(dir, { FAIL_BUILD: "compiler exploded\n" });
    const bad = await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport });
    expect(bad.code).not.toBe(0);
    const lines = remoteLines(bad.stderr);
    expect(lines.at(-1)).toContain("Push rejected: Build failed: compiler exploded");
    expect(bad.stderr).toContain("pre-receive hook declined");
    expect(await world.remoteRef(transport, app)).toBe(goodRev);
    expect(await currentRev(app)).toBe(goodRev);
    expect(await world.proxy.fetch(app)).toEqual({ status: 200, body: "good" });
  });

  it("stores other branches without deploying and refuses deleting the deploy branch", async () => {
    const app = `branches-${transport}`;
    const dir = await world.repo({ "body.txt": "main\n" });
    expect((await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport })).code).toBe(
      0,
    );
    const deployed = await world.platform.releases.list(app);

    await world.git(["checkout", "-q", "-b", "feature"], { cwd: dir });
    const featureRev = await world.commit(dir, { "body.txt": "feature\n" });
    const feature = await world.git(["push", world.url(transport, app), "feature"], { cwd: dir, transport });
    expect(feature.code, feature.stderr).toBe(0);
    expect(remoteLines(feature.stderr)).toContain(
      `-----> Stored feature; nothing deployed (only main deploys ${app}).`,
    );
    expect(await world.remoteRef(transport, app, "refs/heads/feature")).toBe(featureRev);
    expect(await world.platform.releases.list(app)).toEqual(deployed);

    const deletion = await world.git(["push", world.url(transport, app), ":main"], { cwd: dir, transport });
    expect(deletion.code).not.toBe(0);
    expect(remoteLines(deletion.stderr).at(-1)).toContain(
      `Deleting main, the deploy branch of ${app}, is refused.`,
    );
    expect(await world.remoteRef(transport, app)).toBe(deployed[0]?.source.rev);

    const removeFeature = await world.git(["push", world.url(transport, app), ":feature"], {
      cwd: dir,
      transport,
    });
    expect(removeFeature.code, removeFeature.stderr).toBe(0);
    expect(await world.remoteRef(transport, app, "refs/heads/feature")).toBeUndefined();
  });

  it("deploys a force push, master when no deploy branch is set, and a configured deploy branch", async () => {
    const app = `branchy-${transport}`;
    const dir = await world.repo({ "body.txt": "on master\n" }, "master");
    const master = await world.git(["push", world.url(transport, app), "master"], { cwd: dir, transport });
    expect(master.code, master.stderr).toBe(0);
    expect(await world.proxy.fetch(app)).toEqual({ status: 200, body: "on master" });

    await world.git(["commit", "-q", "--amend", "-m", "rewritten"], { cwd: dir });
    const rewritten = await world.commit(dir, { "body.txt": "forced\n" });
    const plain = await world.git(["push", world.url(transport, app), "HEAD~1:master"], {
      cwd: dir,
      transport,
    });
    expect(plain.code, plain.stderr).not.toBe(0);
    const forced = await world.git(["push", "--force", world.url(transport, app), "master"], {
      cwd: dir,
      transport,
    });
    expect(forced.code, forced.stderr).toBe(0);
    expect(await currentRev(app)).toBe(rewritten);

    await world.platform.apps.configure(app, { deployBranch: "production" });
    await world.commit(dir, { "body.txt": "production\n" });
    const notDeployed = await world.git(["push", world.url(transport, app), "master"], {
      cwd: dir,
      transport,
    });
    expect(notDeployed.code, notDeployed.stderr).toBe(0);
    expect(await currentRev(app)).toBe(rewritten);
    const production = await world.git(["push", world.url(transport, app), "master:production"], {
      cwd: dir,
      transport,
    });
    expect(production.code, production.stderr).toBe(0);
    expect(await world.proxy.fetch(app)).toEqual({ status: 200, body: "production" });
  });

  it("clones the pushed history", async () => {
    const app = `clone-${transport}`;
    const dir = await world.repo({ "body.txt": "one\n" });
    const second = await world.commit(dir, { "body.txt": "two\n" }, "second commit");
    expect((await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport })).code).toBe(
      0,
    );
    const target = join(world.root, `clone-of-${app}`);
    const clone = await world.git(["clone", "-q", world.url(transport, app), target], { transport });
    expect(clone.code, clone.stderr).toBe(0);
    const log = await world.git(["log", "--format=%H %s"], { cwd: target });
    expect(log.stdout.trim().split("\n")).toEqual([
      `${second} second commit`,
      expect.stringMatching(/ initial$/),
    ]);
    expect((await readdir(target)).sort()).toEqual([".git", "body.txt"]);
  });
});
