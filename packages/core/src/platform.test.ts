import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isBerthError } from "./errors.js";
import { collectOutput } from "./output.js";
import { Platform } from "./platform.js";
import { sourceFrom, temporaryDirectory } from "./testing/conformance.js";
import { FakeBuilderPlugin, FakeProxyPlugin, FakeSchedulerPlugin } from "./testing/fakes.js";

interface Harness {
  platform: Platform;
  dataDir: string;
  scheduler: FakeSchedulerPlugin["scheduler"];
  proxy: FakeProxyPlugin["proxy"];
  deploy: (app: string, files: Record<string, string>, rev?: string) => ReturnType<Platform["deploy"]>;
}

const sources: string[] = [];

async function harness(): Promise<Harness> {
  const dataDir = await temporaryDirectory();
  const platform = new Platform({
    dataDir,
    defaults: { scheduler: "fake", proxy: "fake" },
    checks: { uptime: 0.2 },
  });
  const schedulerPlugin = new FakeSchedulerPlugin();
  const proxyPlugin = new FakeProxyPlugin();
  platform.use(new FakeBuilderPlugin()).use(schedulerPlugin).use(proxyPlugin);
  return {
    platform,
    dataDir,
    scheduler: schedulerPlugin.scheduler,
    proxy: proxyPlugin.proxy,
    deploy: async (app, files, rev) => {
      const source = await sourceFrom(files, rev);
      sources.push(source.dir);
      return platform.deploy(app, source);
    },
  };
}

describe("Platform deploy pipeline", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
    await h.platform.apps.create("hello");
  });
  afterEach(async () => {
    for (const app of await h.platform.apps.list()) await h.platform.apps.destroy(app);
    await rm(h.dataDir, { recursive: true, force: true });
    await Promise.all(sources.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("runs the hooks in pipeline order and serves the release", async () => {
    const order: string[] = [];
    const { hooks } = h.platform;
    hooks.receive.tapPromise("test", async () => void order.push("receive"));
    hooks.build.tapPromise({ name: "test", stage: -1 }, async () => void order.push("build"));
    hooks.release.tapPromise("test", async (release) => {
      order.push("release");
      return release;
    });
    hooks.deploy.tapPromise({ name: "test", stage: -1 }, async () => void order.push("deploy"));
    hooks.checkDeploy.tapPromise("test", async () => void order.push("checkDeploy"));
    hooks.route.tapPromise("test", async () => void order.push("route"));
    hooks.retire.tapPromise("test", async () => void order.push("retire"));
    hooks.deployed.tapPromise("test", async () => void order.push("deployed"));

    const { output, text } = collectOutput();
    const source = await sourceFrom({ "body.txt": "v1 body" }, "abc1234def");
    sources.push(source.dir);
    const release = await h.platform.deploy("hello", source, { output });
    expect(order).toEqual(["receive", "build", "release", "deploy", "checkDeploy", "route", "deployed"]);
    expect(release).toMatchObject({
      id: "v1",
      status: "succeeded",
      description: "Deploy abc1234",
      processTypes: { web: "serve" },
    });
    expect(text()).toMatch(/^-----> Building hello with the fake builder$/m);
    expect(text()).toMatch(/^ {7}web\.1 passed its checks$/m);
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "v1 body" });

    order.length = 0;
    await h.deploy("hello", { "body.txt": "v2 body" });
    expect(order).toEqual([
      "receive",
      "build",
      "release",
      "deploy",
      "checkDeploy",
      "route",
      "retire",
      "deployed",
    ]);
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "v2 body" });
    expect(h.scheduler.instances("hello").map((instance) => instance.release)).toEqual(["v2"]);
  });

  it("bails at the first builder that claims the source, or the selected one", async () => {
    const claimed: string[] = [];
    h.platform.use({
      name: "second-builder",
      apply: (platform) => {
        platform.registerBuilder({
          name: "second",
          detect: async () => true,
          build: async () => ({ builder: "second", image: "second:1" }),
        });
        platform.hooks.build.tapPromise("second-builder", async (context) => {
          claimed.push("second");
          if (context.builder && context.builder !== "second") return undefined;
          return { builder: "second", image: "second:1", defaultProcessTypes: { web: "serve" } };
        });
      },
    });
    expect((await h.deploy("hello", {})).artifact.builder).toBe("fake");
    expect(claimed).toEqual([]);
    await h.platform.apps.configure("hello", { builder: "second" });
    expect((await h.deploy("hello", {})).artifact.builder).toBe("second");
    await h.platform.apps.configure("hello", { builder: "missing" });
    await expect(h.deploy("hello", {})).rejects.toMatchObject({ code: "NO_BUILDER" });
  });

  it("a check failing after three process types started removes every new instance and never routes", async () => {
    await h.deploy("hello", { "body.txt": "stable" });
    const routeCalls = h.proxy.routeCalls;
    const formation = JSON.stringify({
      formation: { web: { quantity: 1 }, worker: { quantity: 1 }, clock: { quantity: 1 } },
    });
    const failing = h.deploy("hello", {
      "body.txt": "broken",
      Procfile: "web: serve\nworker: sleep\nclock: exit 1\n",
      "app.json": formation,
    });
    await expect(failing).rejects.toMatchObject({
      code: "CHECK_FAILED",
      message: expect.stringContaining("clock.1 exited with code 1"),
    });
    expect(h.proxy.routeCalls).toBe(routeCalls);
    expect(
      h.scheduler.instances("hello").map((instance) => `${instance.release}:${instance.processType}`),
    ).toEqual(["v1:web"]);
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "stable" });
    const releases = await h.platform.releases.list("hello");
    expect(releases.map((release) => `${release.id}:${release.status}`)).toEqual([
      "v1:succeeded",
      "v2:failed",
    ]);
    expect(releases[1]?.failure?.code).toBe("CHECK_FAILED");
    expect((await h.platform.apps.state("hello")).currentRelease).toBe("v1");
    expect(h.scheduler.deploys).toBe(2);
  });

  it("a scheduler failing half-way leaves nothing of the new deployment", async () => {
    await h.deploy("hello", { "body.txt": "stable" });
    h.scheduler.failToStart.add("worker");
    await expect(
      h.deploy("hello", {
        Procfile: "web: serve\nworker: sleep",
        "app.json": '{"formation":{"worker":{"quantity":1}}}',
      }),
    ).rejects.toMatchObject({ code: "DEPLOY_FAILED" });
    expect(h.scheduler.instances("hello").map((instance) => instance.release)).toEqual(["v1"]);
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "stable" });
  });

  it("a failing route removes the new instances and keeps the previous release", async () => {
    await h.deploy("hello", { "body.txt": "stable" });
    h.proxy.failNextRoute = true;
    await expect(h.deploy("hello", { "body.txt": "new" })).rejects.toMatchObject({ code: "ROUTE_FAILED" });
    expect(h.scheduler.instances("hello").map((instance) => instance.release)).toEqual(["v1"]);
    expect((await h.platform.apps.state("hello")).currentRelease).toBe("v1");
  });

  it("a build failure leaves no release", async () => {
    await expect(h.deploy("hello", { FAIL_BUILD: "compile error" })).rejects.toMatchObject({
      code: "BUILD_FAILED",
    });
    expect(await h.platform.releases.list("hello")).toEqual([]);
    expect(h.scheduler.instances("hello")).toEqual([]);
  });

  it("bad Procfile, app.json and missing required config fail before the build, changing nothing", async () => {
    const builder = h.platform.builders.get("fake") as unknown as { builds: number };
    for (const [files, code] of [
      [{ Procfile: "web serve" }, "PROCFILE_INVALID"],
      [{ "app.json": "{" }, "APP_JSON_INVALID"],
      [{ "app.json": '{"env":{"DATABASE_URL":{"required":true}}}' }, "CONFIG_REQUIRED_MISSING"],
    ] as const) {
      await expect(h.deploy("hello", files)).rejects.toMatchObject({ code });
    }
    expect(builder.builds).toBe(0);
    expect(await h.platform.releases.list("hello")).toEqual([]);
  });

  it("applies app.json env defaults and generates secrets once", async () => {
    const appJson = JSON.stringify({ env: { MODE: { value: "prod" }, SECRET_KEY: { generator: "secret" } } });
    const first = await h.deploy("hello", { "app.json": appJson });
    expect(first.config.MODE).toBe("prod");
    expect(first.config.SECRET_KEY).toMatch(/^[0-9a-f]{64}$/);
    const second = await h.deploy("hello", { "app.json": appJson });
    expect(second.config.SECRET_KEY).toBe(first.config.SECRET_KEY);
    expect(await h.platform.config.get("hello", "SECRET_KEY")).toBe(first.config.SECRET_KEY);
  });

  it("rollback redeploys the earlier artifact with its config snapshot", async () => {
    await h.platform.config.set("hello", { GREETING: "one" });
    await h.deploy("hello", { "body.txt": "first" });
    await h.platform.config.set("hello", { GREETING: "two" });
    await h.deploy("hello", { "body.txt": "second" });
    const rolled = await h.platform.rollback("hello", "v1");
    expect(rolled).toMatchObject({
      id: "v4",
      description: "Rollback to v1",
      source: { kind: "rollback", from: "v1" },
    });
    expect(rolled.artifact.image).toBe("fake/hello:v1");
    expect(rolled.config).toEqual({ GREETING: "one" });
    expect(await h.platform.config.all("hello")).toEqual({ GREETING: "one" });
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "first" });
    await expect(h.platform.rollback("hello", "v9")).rejects.toMatchObject({ code: "RELEASE_NOT_FOUND" });
  });

  it("config changes restart through a new release; a failed restart changes nothing", async () => {
    await h.deploy("hello", { Procfile: "web: serve" });
    const release = await h.platform.config.set("hello", { BODY: "from config" });
    expect(release).toMatchObject({ id: "v2", description: "Set BODY", config: { BODY: "from config" } });
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "from config" });

    h.proxy.failNextRoute = true;
    await expect(h.platform.config.set("hello", { BODY: "never" })).rejects.toMatchObject({
      code: "ROUTE_FAILED",
    });
    expect(await h.platform.config.get("hello", "BODY")).toBe("from config");
    expect(await h.proxy.fetch("hello")).toEqual({ status: 200, body: "from config" });

    expect(await h.platform.config.set("hello", { QUIET: "1" }, { restart: false })).toBeUndefined();
    expect((await h.platform.releases.list("hello")).length).toBe(3);
    await h.platform.config.unset("hello", ["QUIET", "BODY"]);
    expect(await h.platform.config.all("hello")).toEqual({});
  });

  it("scales through the transactional path and refuses unknown types", async () => {
    await h.deploy("hello", { Procfile: "web: serve\nworker: sleep\nrelease: echo migrate" });
    expect(await h.platform.ps.scale("hello", { web: 3, worker: "1" })).toEqual({ web: 3, worker: 1 });
    const counts = (type: string) =>
      h.scheduler.instances("hello").filter((instance) => instance.processType === type).length;
    expect([counts("web"), counts("worker"), counts("release")]).toEqual([3, 1, 0]);
    await h.platform.ps.scale("hello", { web: 1 });
    expect(counts("web")).toBe(1);
    await expect(h.platform.ps.scale("hello", { nope: 1 })).rejects.toMatchObject({ code: "INVALID_SCALE" });
    await expect(h.platform.ps.scale("hello", { release: 1 })).rejects.toMatchObject({
      code: "INVALID_SCALE",
    });
    await expect(h.platform.ps.scale("hello", { web: -1 })).rejects.toMatchObject({ code: "INVALID_SCALE" });
  });

  it("two deploys of one app serialize; two apps deploy in parallel", async () => {
    await h.platform.apps.create("other");
    const active = new Map<string, number>();
    const entered: string[] = [];
    let maxPerApp = 0;
    let openGate: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    // Builds wait at the gate; if apps were serialized globally, "other" could never join "hello" in a build.
    h.platform.hooks.build.tapPromise({ name: "gate", stage: -1 }, async (context) => {
      const count = (active.get(context.app.name) ?? 0) + 1;
      active.set(context.app.name, count);
      maxPerApp = Math.max(maxPerApp, count);
      entered.push(context.app.name);
      await gate;
      active.set(context.app.name, count - 1);
      return undefined;
    });
    // Both deploys of hello write here: whichever loses the race for the lock says it waits.
    const { output, text } = collectOutput();
    const deployHello = async (body: string) => {
      const source = await sourceFrom({ "body.txt": body });
      sources.push(source.dir);
      return h.platform.deploy("hello", source, { output });
    };
    const deploys = Promise.all([deployHello("a"), deployHello("b"), h.deploy("other", { "body.txt": "c" })]);
    try {
      const deadline = Date.now() + 10_000;
      while (!(entered.includes("hello") && entered.includes("other") && /Waiting for/.test(text()))) {
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Both apps are building at once, and the second deploy of hello is waiting for the app's lock.
      expect([...entered].sort()).toEqual(["hello", "other"]);
      expect(text()).toMatch(/Waiting for deploy of hello/);
    } finally {
      openGate();
    }
    const results = await deploys;
    expect(maxPerApp).toBe(1);
    expect(entered.filter((app) => app === "hello")).toHaveLength(2);
    expect(results.map((release) => `${release.app}:${release.id}`).sort()).toEqual([
      "hello:v1",
      "hello:v2",
      "other:v1",
    ]);
  });

  it("keeps events: a JSONL log and live subscriptions", async () => {
    const seen: string[] = [];
    h.platform.events.subscribe((event) => seen.push(event.type));
    await h.deploy("hello", {});
    expect(seen).toEqual(["deploy.started", "build.succeeded", "release.created", "deploy.succeeded"]);
    await h.platform.events.flushed();
    const { readFile } = await import("node:fs/promises");
    const lines = (await readFile(join(h.dataDir, "events.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((event) => event.type)).toContain("app.created");
    expect(lines.at(-1)).toMatchObject({ type: "deploy.succeeded", app: "hello" });
  });

  it("destroy removes instances, routes and state", async () => {
    await h.deploy("hello", {});
    await h.platform.apps.destroy("hello");
    expect(h.scheduler.instances("hello")).toEqual([]);
    expect(h.proxy.routes.has("hello")).toBe(false);
    expect(await h.platform.apps.list()).toEqual([]);
    await expect(h.platform.apps.get("hello")).rejects.toMatchObject({ code: "APP_NOT_FOUND" });
  });

  it("rename moves the app and replaces its instances", async () => {
    await h.platform.config.set("hello", { BODY: "renamed" }, { restart: false });
    await h.deploy("hello", {});
    await h.platform.apps.rename("hello", "world");
    expect(await h.platform.apps.list()).toEqual(["world"]);
    expect((await h.platform.releases.list("world")).every((release) => release.app === "world")).toBe(true);
    expect(await h.proxy.fetch("world")).toEqual({ status: 200, body: "renamed" });
  });

  it("reconcile settles interrupted releases and removes leftovers", async () => {
    await h.deploy("hello", {});
    await h.platform.store.createRelease({
      ...(await h.platform.releases.get("hello", "v1")),
      version: 2,
      id: "v2",
      status: "pending",
    });
    await h.platform.reconcile();
    expect((await h.platform.releases.get("hello", "v2")).status).toBe("failed");
    expect((await h.platform.releases.get("hello", "v2")).failure?.code).toBe("DEPLOY_INTERRUPTED");
  });
});

describe("hostile input", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await rm(h.dataDir, { recursive: true, force: true });
  });

  async function storedFiles(): Promise<string[]> {
    return (await readdir(h.dataDir, { recursive: true }))
      .filter((name) => !name.startsWith("events"))
      .sort();
  }

  it.each(["../etc", "App", "a b", "a;id", "a".repeat(64), ""])(
    "refuses app name %j and writes nothing",
    async (name) => {
      await expect(h.platform.apps.create(name)).rejects.toMatchObject({ code: "INVALID_APP_NAME" });
      await expect(h.platform.config.set(name, { A: "b" })).rejects.toMatchObject({
        code: "INVALID_APP_NAME",
      });
      expect(await storedFiles()).toEqual([]);
    },
  );

  it("refuses bad config keys, domains and ports without writing", async () => {
    await h.platform.apps.create("app");
    const before = await storedFiles();
    for (const key of ["A-B", "1A", ""]) {
      await expect(h.platform.config.set("app", { OK: "1", [key]: "x" })).rejects.toMatchObject({
        code: "INVALID_CONFIG_KEY",
      });
    }
    for (const domain of ["x.com;include /etc/passwd", "a{b", "x.com\n", "..", "a".repeat(300)]) {
      await expect(h.platform.domains.add("app", ["ok.com", domain])).rejects.toMatchObject({
        code: "INVALID_DOMAIN",
      });
    }
    await expect(h.platform.ports.add("app", ["http:0:5000"])).rejects.toMatchObject({
      code: "INVALID_PORT",
    });
    await expect(h.platform.ports.add("app", ["http:80:70000"])).rejects.toMatchObject({
      code: "INVALID_PORT",
    });
    await expect(h.platform.ports.add("app", ["gopher:80:5000"])).rejects.toMatchObject({
      code: "INVALID_PORT_MAPPING",
    });
    expect(await storedFiles()).toEqual(before);
    expect(await h.platform.config.all("app")).toEqual({});
    expect(await h.platform.domains.list("app")).toEqual([]);
  });

  it("stores hostile config values byte-exact", async () => {
    await h.platform.apps.create("app");
    const values = {
      SUBSHELL: "$(touch /tmp/berth-pwned)",
      BACKTICKS: "`id`",
      QUOTES: `"double" 'single' \\`,
      NEWLINES: "line1\nline2\r\nline3",
      UNICODE: "✓ ünï 😀",
    };
    await h.platform.config.set("app", values);
    expect(await h.platform.config.all("app")).toEqual(values);
    const { existsSync } = await import("node:fs");
    expect(existsSync("/tmp/berth-pwned")).toBe(false);
  });

  it("wraps every rejection in a BerthError with a stable code", async () => {
    const failure = await h.platform.apps.get("../etc").catch((error: unknown) => error);
    expect(isBerthError(failure, "INVALID_APP_NAME")).toBe(true);
    expect((failure as Error).message).toMatch(/lower-case letters/);
  });
});
