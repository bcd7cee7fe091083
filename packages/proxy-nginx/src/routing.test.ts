import { chmod, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect, createServer as createNetServer } from "node:net";
import { join } from "node:path";
import {
  type AppSettings,
  isBerthError,
  type JsonValue,
  Output,
  Platform,
  type RouteContext,
} from "@berth/core";
import { FakeBuilderPlugin, FakeSchedulerPlugin, sourceFrom, temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NginxProxyPlugin } from "./plugin.js";
import { type Answer, freePort, send, sendTls, snapshot } from "./test-helpers.js";

describe("proxy-nginx against a real nginx", () => {
  let dataDir: string;
  let platform: Platform;
  let plugin: NginxProxyPlugin;
  let httpPort: number;
  let httpsPort: number;
  let breakStaging = false;
  const echoServers: Server[] = [];

  const deploy = async (app: string, body: string) => {
    const source = await sourceFrom({ "body.txt": body, Procfile: "web: serve" });
    try {
      return await platform.deploy(app, source);
    } finally {
      await rm(source.dir, { recursive: true, force: true });
    }
  };
  const get = (host: string, path = "/"): Promise<Answer> => send(httpPort, host, { path });
  const failure = async (promise: Promise<unknown>) =>
    promise.then(
      () => {
        throw new Error("expected a rejection");
      },
      (error: unknown) => error,
    );

  beforeAll(async () => {
    dataDir = await temporaryDirectory("berth-nginx-routing-");
    // nginx workers (nobody) must reach the router's sockets under it.
    await chmod(dataDir, 0o755);
    httpPort = await freePort();
    httpsPort = await freePort();
    plugin = new NginxProxyPlugin({
      httpPort,
      httpsPort,
      listenAddress: "127.0.0.1",
      globalDomain: "apps.test",
      workerProcesses: 1,
      onStaged: async (directory) => {
        if (breakStaging) {
          const file = join(directory, "apps", "shop.conf");
          await writeFile(file, `${await readFile(file, "utf8")}this_is_not_a_directive on;\n`);
        }
      },
    });
    platform = new Platform({
      dataDir,
      defaults: { scheduler: "fake", proxy: "nginx" },
      checks: { uptime: 0 },
    });
    platform.use(new FakeBuilderPlugin()).use(new FakeSchedulerPlugin()).use(plugin);
    for (const app of ["shop", "blog"]) await platform.apps.create(app);
    await platform.domains.add("shop", ["shop.test"]);
    await platform.domains.add("blog", ["blog.test"]);
  });

  afterAll(async () => {
    for (const app of await platform.apps.list()) await platform.apps.destroy(app);
    await plugin.proxy.stop();
    for (const server of echoServers) server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("routes two apps on two domains through one port, and 404s unknown hosts", async () => {
    await deploy("shop", "shop-v1");
    await deploy("blog", "blog-v1");
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v1" });
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-v1" });
    const unknown = await get("nobody.test");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain("No app");
    expect(await get("shop.apps.test")).toMatchObject({ status: 200, body: "shop-v1" });
    const status = await plugin.proxy.status("shop");
    expect(status.routed).toBe(true);
    expect(status.domains).toEqual(["shop.test", "shop.apps.test"]);
    expect(status.urls).toContain(`http://shop.test:${httpPort}`);
    expect(status.upstreams).toHaveLength(1);
  });

  it("switches nginx to the new instances before retire runs, reloading only the router tier", async () => {
    const workers = async (pidFile: string) => {
      const master = (await readFile(pidFile, "utf8")).trim();
      return (await readFile(`/proc/${master}/task/${master}/children`, "utf8")).trim();
    };
    const routerPidFile = join(plugin.proxy.directory, "run", "router.pid");
    const edgeBefore = await workers(plugin.proxy.pidFile);
    const routerBefore = await workers(routerPidFile);
    const seen: Answer[] = [];
    // Stage -1: this observer runs before the scheduler's retire stops the old instances.
    platform.hooks.retire.tapPromise({ name: "test-observer", stage: -1 }, async (context) => {
      if (context.app.name === "shop") seen.push(await get("shop.test"));
    });
    await deploy("shop", "shop-v2");
    expect(seen).toEqual([expect.objectContaining({ status: 200, body: "shop-v2" })]);
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    // Client connections live on the edge: a deploy must not reload it (a reload resets idle keep-alives).
    expect(await workers(plugin.proxy.pidFile)).toBe(edgeBefore);
    expect(await workers(routerPidFile)).not.toBe(routerBefore);
  });

  it("remembers what the edge runs across a restart of the Berth process", async () => {
    const edgeWorkers = async () => {
      const master = (await readFile(plugin.proxy.pidFile, "utf8")).trim();
      return (await readFile(`/proc/${master}/task/${master}/children`, "utf8")).trim();
    };
    const before = await edgeWorkers();
    // A second platform on the same data dir stands for the Berth daemon after a restart.
    const restarted = new NginxProxyPlugin({
      httpPort,
      httpsPort,
      listenAddress: "127.0.0.1",
      globalDomain: "apps.test",
      workerProcesses: 1,
    });
    const other = new Platform({
      dataDir,
      defaults: { scheduler: "fake", proxy: "nginx" },
      checks: { uptime: 0 },
    });
    const scheduler = new FakeSchedulerPlugin();
    other.use(new FakeBuilderPlugin()).use(scheduler).use(restarted);
    const source = await sourceFrom({ "body.txt": "blog-restarted", Procfile: "web: serve" });
    await other.deploy("blog", source);
    await rm(source.dir, { recursive: true, force: true });
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-restarted" });
    expect(await edgeWorkers()).toBe(before);
    // Back to the first platform's instances, which it still serves from.
    await deploy("blog", "blog-v1");
    await scheduler.scheduler.removeApp("blog");
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-v1" });
  });

  it("follows domains added and removed, and an app rename", async () => {
    await platform.domains.add("shop", ["www.shop.test"]);
    expect(await get("www.shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    await platform.domains.remove("shop", ["www.shop.test"]);
    expect((await get("www.shop.test")).status).toBe(404);

    await platform.apps.rename("shop", "store");
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    expect(await get("store.apps.test")).toMatchObject({ status: 200, body: "shop-v2" });
    expect((await get("shop.apps.test")).status).toBe(404);
    await platform.apps.rename("store", "shop");
    expect(await get("shop.apps.test")).toMatchObject({ status: 200, body: "shop-v2" });
    expect((await get("store.apps.test")).status).toBe(404);
  });

  it("answers 503 with a short page for an app scaled to web=0, and serves again when scaled up", async () => {
    await platform.ps.scale("blog", { web: 0 });
    const down = await get("blog.test");
    expect(down.status).toBe(503);
    expect(down.body).toContain("blog has no running web process");
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    await platform.ps.scale("blog", { web: 2 });
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-v1" });
    expect((await plugin.proxy.status("blog")).upstreams).toHaveLength(2);
  });

  it("answers 503 while an app is stopped, and serves its new endpoints once started", async () => {
    await platform.ps.stop("blog");
    const stopped = await get("blog.test");
    expect(stopped.status).toBe(503);
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    await platform.ps.start("blog");
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-v1" });
  });

  it("rejects hostile domains before any file changes", async () => {
    const before = await snapshot(plugin.proxy.directory);
    const hostile = [
      "x.com;include /etc/passwd",
      "a{b}",
      "$host",
      "evil.test\nserver_name other",
      "*.*.x",
      `${"a".repeat(300)}.test`,
      "a b.test",
      "é.test",
    ];
    for (const domain of hostile) {
      const error = await failure(platform.domains.add("shop", [domain]));
      expect(isBerthError(error, "INVALID_DOMAIN"), domain).toBe(true);
    }
    expect(await snapshot(plugin.proxy.directory)).toEqual(before);
  });

  it("never writes an unvalidated domain that bypassed core into a config", async () => {
    const stored = (await platform.store.readApp("shop")) as AppSettings;
    await platform.store.writeApp({ ...stored, domains: [...stored.domains, "x.test;include /etc/passwd"] });
    const before = await snapshot(plugin.proxy.directory);
    const error = await failure(platform.domains.add("shop", ["fine.test"]));
    expect(isBerthError(error, "PROXY_FAILED")).toBe(true);
    expect(String((error as Error).message)).toContain("shop");
    expect(await snapshot(plugin.proxy.directory)).toEqual(before);
    await platform.store.writeApp(stored);
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
  });

  it("keeps a broken candidate config out of nginx and names the app and line", async () => {
    const before = await snapshot(plugin.proxy.liveDirectory);
    const routes = await readFile(join(plugin.proxy.directory, "routes.json"), "utf8");
    breakStaging = true;
    const error = await failure(platform.domains.add("shop", ["broken.test"])).finally(() => {
      breakStaging = false;
    });
    expect(isBerthError(error, "PROXY_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(/app shop: unknown directive "this_is_not_a_directive"/);
    expect((error as Error).message).toMatch(/apps\/shop\.conf line \d+/);
    expect(await snapshot(plugin.proxy.liveDirectory)).toEqual(before);
    expect(await readFile(join(plugin.proxy.directory, "routes.json"), "utf8")).toBe(routes);
    expect((await get("broken.test")).status).toBe(404);
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    await platform.domains.remove("shop", ["broken.test"]);
  });

  it("applies validated per-app settings and rejects raw strings", async () => {
    await platform.apps.setPluginSettings("shop", "proxy-nginx", {
      clientMaxBodySize: "1k",
      proxyReadTimeout: "30s",
    });
    const tooLarge = await send(httpPort, "shop.test", { method: "POST", body: "x".repeat(4096) });
    expect(tooLarge.status).toBe(413);
    const rejected: Array<Record<string, JsonValue>> = [
      { clientMaxBodySize: "1m; include /etc/passwd" },
      { proxyReadTimeout: "$request" },
      { upstreamKeepalive: -1 },
      { notASetting: "1" },
    ];
    for (const bad of rejected) {
      const error = await failure(platform.apps.setPluginSettings("shop", "proxy-nginx", bad));
      expect(isBerthError(error, "INVALID_SETTING"), JSON.stringify(bad)).toBe(true);
    }
    expect((await platform.apps.get("shop")).plugins["proxy-nginx"]).toEqual({
      clientMaxBodySize: "1k",
      proxyReadTimeout: "30s",
    });
    await platform.apps.setPluginSettings("shop", "proxy-nginx", {
      clientMaxBodySize: null,
      proxyReadTimeout: null,
    });
    expect((await send(httpPort, "shop.test", { method: "POST", body: "x".repeat(4096) })).status).toBe(200);
  });

  it("puts the previous config back when nginx cannot apply a reload, and says why", async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    const busyPort = typeof address === "object" && address ? address.port : 0;
    const liveBefore = await readlink(plugin.proxy.liveDirectory);
    const started = Date.now();
    // `nginx -t` does not bind, so this passes the test and fails only when the master reloads.
    const error = await failure(platform.ports.add("shop", [`http:${busyPort}:5000`])).finally(() =>
      blocker.close(),
    );
    expect(isBerthError(error, "PROXY_FAILED")).toBe(true);
    expect((error as Error).message).toContain(
      `could not apply the new config: bind() to 127.0.0.1:${busyPort}`,
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await readlink(plugin.proxy.liveDirectory)).toBe(liveBefore);
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    await platform.ports.clear("shop");
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
  });

  it("passes X-Forwarded-* and X-Request-Start, and upgrades WebSockets", async () => {
    const echo = createServer((request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(request.headers));
    });
    echo.on("upgrade", (request, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Echo-Host: ${request.headers.host}\r\n\r\n`,
      );
      socket.on("data", (chunk) => socket.write(chunk));
    });
    echoServers.push(echo);
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const address = echo.address();
    const port = typeof address === "object" && address ? address.port : 0;
    await platform.apps.create("echo");
    await platform.domains.add("echo", ["echo.test"]);
    const app = await platform.apps.get("echo");
    const release = { id: "v1", artifact: { builder: "test", image: "none" } };
    const context = {
      platform,
      app,
      output: new Output(),
      signal: new AbortController().signal,
      proxy: "nginx",
      release,
      deployment: {
        id: "v1-echo",
        app: "echo",
        release: "v1",
        formation: { web: 1 },
        scheduler: "fake",
        createdAt: new Date().toISOString(),
        instances: [
          {
            id: "echo-1",
            processType: "web",
            index: 1,
            endpoint: { host: "127.0.0.1", port },
            containerPort: 5000,
          },
        ],
      },
    } as unknown as RouteContext;
    await plugin.proxy.route(context);

    const answer = await get("echo.test", "/path?query=1");
    const headers = JSON.parse(answer.body) as Record<string, string>;
    expect(headers.host).toBe("echo.test");
    expect(headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(headers["x-forwarded-proto"]).toBe("http");
    expect(headers["x-forwarded-port"]).toBe(String(httpPort));
    expect(headers["x-request-start"]).toMatch(/^t=[0-9]+\.[0-9]{3}$/);

    const socket = connect(httpPort, "127.0.0.1");
    const received: string[] = [];
    const upgraded = new Promise<string>((resolve, reject) => {
      socket.on("data", (chunk) => {
        received.push(chunk.toString("utf8"));
        const text = received.join("");
        if (text.includes("\r\n\r\n") && !text.includes("ping-through-nginx"))
          socket.write("ping-through-nginx");
        if (text.includes("ping-through-nginx")) resolve(text);
      });
      socket.on("error", reject);
    });
    socket.write(
      "GET /socket HTTP/1.1\r\nHost: echo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    const text = await upgraded;
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 101 /);
    expect(text).toContain("X-Echo-Host: echo.test");
    expect(text.endsWith("ping-through-nginx")).toBe(true);
    await platform.apps.destroy("echo");
  });

  it("serves HTTPS with a certificate, redirects HTTP to it, and sends HSTS when opted in", async () => {
    const info = await plugin.proxy.certs.generateSelfSigned("shop");
    expect(info.domains).toEqual(["shop.test", "shop.apps.test"]);
    expect(info.selfSigned).toBe(true);
    const redirect = await get("shop.test", "/some/path?x=1");
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://shop.test:${httpsPort}/some/path?x=1`);
    const secure = await sendTls(httpsPort, "shop.test");
    expect(secure).toMatchObject({ status: 200, body: "shop-v2", certificateSubject: "shop.test" });
    expect(secure.headers["strict-transport-security"]).toBeUndefined();
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-v1" });

    const stored = join(plugin.proxy.directory, "certs", "shop", info.fingerprint);
    expect((await stat(join(stored, "key.pem"))).mode & 0o777).toBe(0o600);
    expect((await stat(join(stored, "certificate.pem"))).mode & 0o777).toBe(0o600);

    await platform.apps.setPluginSettings("shop", "proxy-nginx", { hsts: true, hstsMaxAge: 600 });
    expect((await sendTls(httpsPort, "shop.test")).headers["strict-transport-security"]).toBe(
      "max-age=600; includeSubDomains",
    );
    await platform.apps.setPluginSettings("shop", "proxy-nginx", { hsts: null, hstsMaxAge: null });

    // A pair that does not match is refused and the installed one keeps serving.
    const other = await import("./certificates.js").then((module) =>
      module.generateSelfSignedPair(["other.test"]),
    );
    const mine = await import("./certificates.js").then((module) =>
      module.generateSelfSignedPair(["shop.test"]),
    );
    const mismatch = await failure(
      plugin.proxy.certs.add("shop", { certificate: mine.certificate, key: other.key }),
    );
    expect(isBerthError(mismatch, "INVALID_CERTIFICATE")).toBe(true);
    const garbage = await failure(
      plugin.proxy.certs.add("shop", { certificate: "not a cert", key: other.key }),
    );
    expect(isBerthError(garbage, "INVALID_CERTIFICATE")).toBe(true);
    expect((await plugin.proxy.certs.get("shop"))?.fingerprint).toBe(info.fingerprint);

    // Replacing with a matching pair takes effect and removes the old files.
    const replaced = await plugin.proxy.certs.add("shop", mine);
    expect(replaced.domains).toEqual(["shop.test"]);
    expect((await sendTls(httpsPort, "shop.test")).status).toBe(200);
    await expect(stat(stored)).rejects.toThrow();

    await plugin.proxy.certs.remove("shop");
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    expect(await plugin.proxy.certs.get("shop")).toBeUndefined();
  });

  it("comes back through reconcile after nginx stopped, and ignores a stale pid file", async () => {
    await plugin.proxy.stop();
    await expect(get("shop.test")).rejects.toThrow();
    // A pid file naming a live process that is not nginx (this test runner) must be treated as stale.
    await writeFile(plugin.proxy.pidFile, `${process.pid}\n`);
    await platform.reconcile();
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v2" });
    expect(await get("blog.test")).toMatchObject({ status: 200, body: "blog-v1" });
    const pid = Number(await readFile(plugin.proxy.pidFile, "utf8"));
    expect(pid).not.toBe(process.pid);
    expect(await readFile(`/proc/${pid}/cmdline`, "utf8")).toContain("nginx: master");
  });

  it("stops routing an app that switches to another proxy", async () => {
    await platform.apps.configure("shop", { proxy: "elsewhere" });
    expect((await get("shop.test")).status).toBe(404);
    expect((await plugin.proxy.status("shop")).routed).toBe(false);
    await platform.apps.configure("shop", { proxy: "nginx" });
    await deploy("shop", "shop-v3");
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v3" });
  });

  it("stops routing a destroyed app and removes its files", async () => {
    await plugin.proxy.certs.generateSelfSigned("blog");
    await platform.apps.destroy("blog");
    expect((await get("blog.test")).status).toBe(404);
    expect((await get("blog.apps.test")).status).toBe(404);
    expect(await get("shop.test")).toMatchObject({ status: 200, body: "shop-v3" });
    await expect(stat(join(plugin.proxy.liveDirectory, "apps", "blog.conf"))).rejects.toThrow();
    await expect(stat(join(plugin.proxy.directory, "certs", "blog"))).rejects.toThrow();
    expect((await plugin.proxy.status("blog")).routed).toBe(false);
  });
});
