import { execFile } from "node:child_process";
import { chmod, rm } from "node:fs/promises";
import { get } from "node:http";
import { createServer } from "node:net";
import { promisify } from "node:util";
import { Platform } from "@berth/core";
import { StaticArtifactBuilderPlugin, temporaryDirectory } from "@berth/core/testing";
import { NginxProxyPlugin } from "@berth/proxy-nginx";
import { dockerScheduler } from "@berth/scheduler-docker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { percentile, startLoad } from "./load.js";

const run = promisify(execFile);
const image = `berth-test-routing-platform:${process.pid}`;
const app = `zd-${process.pid % 100000}`;
const web =
  'mkdir -p /tmp/www && printf "%s" "$BODY" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function buildImage(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile("docker", ["build", "-q", "-t", image, "-"], (error) =>
      error ? reject(error) : resolve(),
    );
    child.stdin?.end(`FROM berth/busybox:latest\nCMD ["sh", "-c", ${JSON.stringify(web)}]\n`);
  });
}

describe("zero-downtime redeploys through nginx with real containers", () => {
  let dataDir: string;
  let platform: Platform;
  let proxy: NginxProxyPlugin;
  let httpPort: number;

  beforeAll(async () => {
    await buildImage();
    dataDir = await temporaryDirectory("berth-routing-platform-");
    // nginx workers run as nobody and buffer through temp files under the data dir.
    await chmod(dataDir, 0o755);
    httpPort = await freePort();
    proxy = new NginxProxyPlugin({
      httpPort,
      httpsPort: await freePort(),
      listenAddress: "127.0.0.1",
      workerProcesses: 1,
    });
    platform = new Platform({
      dataDir,
      defaults: { scheduler: "docker", proxy: "nginx" },
      checks: { uptime: 1 },
    });
    platform
      .use(
        new StaticArtifactBuilderPlugin(() => ({
          builder: "static",
          image,
          ports: [5000],
          defaultProcessTypes: { web },
        })),
      )
      .use(dockerScheduler({ stopGracePeriodSeconds: 2 }))
      .use(proxy);
    await platform.apps.create(app);
    await platform.domains.add(app, ["zero.test"]);
  });

  afterAll(async () => {
    if (platform && (await platform.apps.exists(app))) await platform.apps.destroy(app);
    await proxy?.proxy.stop();
    await run("docker", ["image", "rm", "-f", image]).catch(() => undefined);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const deploy = async (body: string) => {
    await platform.config.set(app, { BODY: body }, { restart: false });
    const source = await temporaryDirectory("berth-routing-source-");
    try {
      return await platform.deploy(app, { kind: "dir", dir: source });
    } finally {
      await rm(source, { recursive: true, force: true });
    }
  };

  it("answers every request with the old or the new body while redeploying 5 times and rolling back once", async () => {
    await deploy("body-0");
    // Which bodies may answer: the serving one, plus the one being rolled out while a deploy runs.
    const windows: Array<{ from: number; to: number; bodies: string[] }> = [];
    let current = "body-0";
    const open = (next: string) => {
      windows.push({ from: Date.now(), to: Number.POSITIVE_INFINITY, bodies: [current, next] });
    };
    const close = (next: string) => {
      const window = windows.at(-1);
      if (window) window.to = Date.now();
      current = next;
      windows.push({ from: Date.now(), to: Number.POSITIVE_INFINITY, bodies: [next] });
    };
    windows.push({ from: 0, to: Number.POSITIVE_INFINITY, bodies: [current] });
    const load = startLoad({
      port: httpPort,
      host: "zero.test",
      connections: 20,
      minimumRequests: 5_000,
      deadlineMs: 240_000,
      accept: (status, body, startedAt) =>
        status === 200 && windows.some((window) => window.to >= startedAt && window.bodies.includes(body)),
    });
    const releases: string[] = [];
    for (let index = 1; index <= 5; index += 1) {
      const body = `body-${index}`;
      open(body);
      releases.push((await deploy(body)).id);
      close(body);
    }
    // Roll back to the release that served body-3.
    const target = releases[2] as string;
    open("body-3");
    await platform.rollback(app, target);
    close("body-3");
    load.stop();
    const result = await load.done;
    const summary = {
      requests: result.requests,
      errors: result.errors,
      wrong: result.wrong,
      resetsOnReusedConnections: result.resetsOnReusedConnections,
      p50: percentile(result.latenciesMs, 0.5).toFixed(2),
      p99: percentile(result.latenciesMs, 0.99).toFixed(2),
      samples: result.samples,
    };
    console.log("zero-downtime:", JSON.stringify(summary));
    expect(result.requests).toBeGreaterThanOrEqual(5_000);
    expect(result.errors).toBe(0);
    expect(result.wrong).toBe(0);
    const after = await new Promise<string>((resolve, reject) => {
      get({ host: "127.0.0.1", port: httpPort, headers: { Host: "zero.test" }, agent: false }, (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString("utf8");
        });
        response.on("end", () => resolve(body));
      }).on("error", reject);
    });
    expect(after).toBe("body-3");
    const status = await platform.ps.status(app);
    expect(status.filter((instance) => instance.processType === "web")).toHaveLength(1);
  });
});
