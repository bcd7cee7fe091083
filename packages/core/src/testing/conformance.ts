import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isBerthError } from "../errors.js";
import type { Artifact, Source } from "../model.js";
import { collectOutput } from "../output.js";
import { Platform } from "../platform.js";
import type { BerthPlugin } from "../plugin.js";
import { FakeBuilderPlugin, FakeSchedulerPlugin, StaticArtifactBuilderPlugin } from "./fakes.js";

/** A temporary data dir and source dir per suite; removed afterwards. */
export async function temporaryDirectory(prefix = "berth-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes files into a new temporary directory and returns it as a `dir` source. */
export async function sourceFrom(files: Record<string, string>, rev?: string): Promise<Source> {
  const dir = await temporaryDirectory("berth-source-");
  await Promise.all(Object.entries(files).map(([name, content]) => writeFile(join(dir, name), content)));
  return { kind: "dir", dir, ...(rev ? { rev } : {}) };
}

async function getText(url: string, host?: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { headers: host ? { Host: host } : {} });
  return { status: response.status, body: await response.text() };
}

export interface SchedulerSuiteOptions {
  /** The plugin under test; its scheduler must be registered under `schedulerName`. */
  plugin: () => BerthPlugin;
  schedulerName: string;
  /** An artifact the scheduler can run (built once per suite, e.g. a small local image). */
  artifact: () => Promise<Artifact>;
  /** Commands, in the artifact, for: a web server answering `$BODY` on `$PORT`, a worker that stays up, a process that exits 1. */
  commands: { web: string; worker: string; failing: string };
  timeoutMs?: number;
}

/** Every scheduler must pass this suite: transactional deploys, retire, discard, status, run, stop/start, removal. */
export function testScheduler(options: SchedulerSuiteOptions): void {
  describe(`scheduler conformance: ${options.schedulerName}`, () => {
    let dataDir: string;
    let platform: Platform;
    let artifact: Artifact;
    const app = `conformance-${process.pid % 10000}`;
    const timeout = options.timeoutMs ?? 120_000;

    const deployWith = async (body: string, processTypes: Record<string, string>) => {
      await platform.config.set(app, { BODY: body }, { restart: false });
      const source = await sourceFrom({
        Procfile: Object.entries(processTypes)
          .map(([type, command]) => `${type}: ${command}`)
          .join("\n"),
      });
      try {
        return await platform.deploy(app, source);
      } finally {
        await rm(source.dir, { recursive: true, force: true });
      }
    };

    const webEndpoint = async () => {
      const web = (await platform.ps.status(app)).find(
        (instance) => instance.processType === "web" && instance.running,
      );
      expect(web?.endpoint).toBeDefined();
      return `http://${web?.endpoint?.host}:${web?.endpoint?.port}/`;
    };

    beforeAll(async () => {
      dataDir = await temporaryDirectory();
      artifact = await options.artifact();
      platform = new Platform({
        dataDir,
        defaults: { scheduler: options.schedulerName },
        checks: { uptime: 1 },
      });
      platform.use(new StaticArtifactBuilderPlugin(() => artifact)).use(options.plugin());
      await platform.apps.create(app);
    }, timeout);

    afterAll(async () => {
      if (await platform.apps.exists(app)) await platform.apps.destroy(app);
      await rm(dataDir, { recursive: true, force: true });
    }, timeout);

    it(
      "deploys a web process that answers on its loopback endpoint with its config",
      async () => {
        await deployWith("one", { web: options.commands.web });
        const endpoint = await webEndpoint();
        expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
        expect((await getText(endpoint)).body).toContain("one");
      },
      timeout,
    );

    it(
      "replaces the previous generation and retires it",
      async () => {
        const before = await platform.ps.status(app);
        await deployWith("two", { web: options.commands.web, worker: options.commands.worker });
        await platform.ps.scale(app, { worker: 1 });
        const after = await platform.ps.status(app);
        expect(after.some((instance) => before.some((old) => old.id === instance.id))).toBe(false);
        expect(after.filter((instance) => instance.processType === "web")).toHaveLength(1);
        expect(after.filter((instance) => instance.processType === "worker")).toHaveLength(1);
        expect((await getText(await webEndpoint())).body).toContain("two");
      },
      timeout,
    );

    it(
      "removes every new instance when a process fails its check, leaving the previous serving",
      async () => {
        const before = await platform.ps.status(app);
        const serving = await webEndpoint();
        await platform.config.set(app, { BODY: "three" }, { restart: false });
        const source = await sourceFrom({
          Procfile: `web: ${options.commands.web}\nworker: ${options.commands.failing}`,
        });
        await expect(platform.deploy(app, source)).rejects.toMatchObject({ code: "CHECK_FAILED" });
        await rm(source.dir, { recursive: true, force: true });
        const after = await platform.ps.status(app);
        expect(after.map((instance) => instance.id).sort()).toEqual(
          before.map((instance) => instance.id).sort(),
        );
        expect((await getText(serving)).body).toContain("two");
      },
      timeout,
    );

    it(
      "runs one-off commands and returns their exit code",
      async () => {
        const { output, text } = collectOutput();
        const ok = await platform.run(
          app,
          options.commands.worker.includes("sleep") ? "echo hello-from-run" : "echo hello-from-run",
          {
            onOutput: (chunk) => output.stream(chunk),
          },
        );
        output.flush();
        expect(ok.exitCode).toBe(0);
        expect(text()).toContain("hello-from-run");
        expect((await platform.run(app, "exit 3")).exitCode).toBe(3);
      },
      timeout,
    );

    it(
      "stops and starts the app",
      async () => {
        await platform.ps.stop(app);
        expect((await platform.ps.status(app)).every((instance) => !instance.running)).toBe(true);
        await platform.ps.start(app);
        expect((await getText(await webEndpoint())).body).toContain("two");
      },
      timeout,
    );

    it(
      "removes every trace of a destroyed app",
      async () => {
        await platform.apps.destroy(app);
        const scheduler = platform.scheduler(options.schedulerName);
        expect(await scheduler.status(app)).toEqual([]);
      },
      timeout,
    );
  });
}

export interface ProxySuiteOptions {
  plugin: () => BerthPlugin;
  proxyName: string;
  /** Sends a request through the proxy for `host`, e.g. to 127.0.0.1:<proxy port>. */
  request: (host: string, path?: string) => Promise<{ status: number; body: string }>;
  timeoutMs?: number;
}

/** Every proxy must pass this suite: routes follow deploys, domains and destroy; unknown hosts get 404. */
export function testProxy(options: ProxySuiteOptions): void {
  describe(`proxy conformance: ${options.proxyName}`, () => {
    let dataDir: string;
    let platform: Platform;
    const timeout = options.timeoutMs ?? 60_000;
    const deploy = async (app: string, body: string) => {
      const source = await sourceFrom({ "body.txt": body, Procfile: "web: serve" });
      try {
        return await platform.deploy(app, source);
      } finally {
        await rm(source.dir, { recursive: true, force: true });
      }
    };

    beforeAll(async () => {
      dataDir = await temporaryDirectory();
      platform = new Platform({ dataDir, defaults: { scheduler: "fake", proxy: options.proxyName } });
      platform.use(new FakeBuilderPlugin()).use(new FakeSchedulerPlugin()).use(options.plugin());
      await platform.apps.create("alpha");
      await platform.apps.create("beta");
      await platform.domains.add("alpha", ["alpha.conformance.test"]);
      await platform.domains.add("beta", ["beta.conformance.test"]);
    }, timeout);

    afterAll(async () => {
      for (const app of await platform.apps.list()) await platform.apps.destroy(app);
      await rm(dataDir, { recursive: true, force: true });
    }, timeout);

    it(
      "routes each domain to its app and answers 404 for unknown hosts",
      async () => {
        await deploy("alpha", "alpha-v1");
        await deploy("beta", "beta-v1");
        expect(await options.request("alpha.conformance.test")).toMatchObject({
          status: 200,
          body: "alpha-v1",
        });
        expect(await options.request("beta.conformance.test")).toMatchObject({
          status: 200,
          body: "beta-v1",
        });
        expect((await options.request("nobody.conformance.test")).status).toBe(404);
      },
      timeout,
    );

    it(
      "follows a redeploy",
      async () => {
        await deploy("alpha", "alpha-v2");
        expect(await options.request("alpha.conformance.test")).toMatchObject({
          status: 200,
          body: "alpha-v2",
        });
      },
      timeout,
    );

    it(
      "follows domain changes",
      async () => {
        await platform.domains.add("alpha", ["www.alpha.conformance.test"]);
        expect((await options.request("www.alpha.conformance.test")).body).toBe("alpha-v2");
        await platform.domains.remove("alpha", ["www.alpha.conformance.test"]);
        expect((await options.request("www.alpha.conformance.test")).status).toBe(404);
      },
      timeout,
    );

    it(
      "stays valid when an app has no domain left, and routes it again once it has one",
      async () => {
        await platform.domains.clear("alpha");
        expect((await options.request("alpha.conformance.test")).status).toBe(404);
        expect((await options.request("beta.conformance.test")).body).toBe("beta-v1");
        await platform.domains.add("alpha", ["alpha.conformance.test"]);
        expect(await options.request("alpha.conformance.test")).toMatchObject({
          status: 200,
          body: "alpha-v2",
        });
      },
      timeout,
    );

    it(
      "stops routing a destroyed app",
      async () => {
        await platform.apps.destroy("beta");
        expect((await options.request("beta.conformance.test")).status).toBe(404);
        expect((await options.request("alpha.conformance.test")).body).toBe("alpha-v2");
      },
      timeout,
    );
  });
}

export interface BuilderSuiteOptions {
  plugin: () => BerthPlugin;
  builderName: string;
  /** Files of a source this builder claims and builds. */
  buildable: Record<string, string>;
  /** Files of a source this builder claims but whose build fails. */
  failing: Record<string, string>;
  /** Files of a source this builder does not claim, when detection applies; omit for select-only builders. */
  unclaimed?: Record<string, string>;
  /** Extra checks of a built artifact (e.g. the image exists). */
  verify?: (artifact: Artifact) => Promise<void>;
  timeoutMs?: number;
}

/** Every builder must pass this suite: detection, a build that yields an artifact, a failing build that throws BUILD_FAILED. */
export function testBuilder(options: BuilderSuiteOptions): void {
  describe(`builder conformance: ${options.builderName}`, () => {
    let dataDir: string;
    let platform: Platform;
    const timeout = options.timeoutMs ?? 300_000;
    const app = `builder-conformance-${process.pid % 10000}`;

    const build = async (files: Record<string, string>, version: number) => {
      const source = await sourceFrom(files);
      const { output, text } = collectOutput();
      try {
        const settings = await platform.apps.get(app);
        const artifact = await platform.hooks.build.promise({
          platform,
          app: settings,
          output,
          signal: new AbortController().signal,
          source,
          version,
          builder: undefined,
          config: {},
        });
        return { artifact, text: text() };
      } finally {
        await rm(source.dir, { recursive: true, force: true });
      }
    };

    beforeAll(async () => {
      dataDir = await temporaryDirectory();
      platform = new Platform({ dataDir, defaults: { scheduler: "fake" } });
      platform.use(options.plugin());
      await platform.apps.create(app);
    }, timeout);

    afterAll(async () => {
      await platform.apps.destroy(app).catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
    }, timeout);

    it("registers itself under its name", () => {
      expect(platform.builders.has(options.builderName)).toBe(true);
    });

    it(
      "claims and builds a buildable source, streaming Heroku-style output",
      async () => {
        const { artifact, text } = await build(options.buildable, 1);
        expect(artifact?.builder).toBe(options.builderName);
        expect(artifact?.image).toBeTruthy();
        expect(text).toMatch(/^-----> /m);
        if (artifact && options.verify) await options.verify(artifact);
      },
      timeout,
    );

    it(
      "fails a broken build with BUILD_FAILED",
      async () => {
        const failure = await build(options.failing, 2).catch((error: unknown) => error);
        expect(isBerthError(failure, "BUILD_FAILED")).toBe(true);
      },
      timeout,
    );

    if (options.unclaimed) {
      const unclaimed = options.unclaimed;
      it(
        "does not claim a source it cannot build",
        async () => {
          const { artifact } = await build(unclaimed, 3);
          expect(artifact).toBeUndefined();
        },
        timeout,
      );
    }
  });
}
