import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Platform } from "@berth/core";
import { FakeBuilderPlugin, FakeSchedulerPlugin, sourceFrom, temporaryDirectory } from "@berth/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readMasterPid, runProgram, waitForExit } from "./nginx-process.js";
import { NginxProxyPlugin } from "./plugin.js";
import { freePort, send } from "./test-helpers.js";

/** An nginx that is not Berth's: its own prefix and config, including a conf.d directory in its http block. */
describe("include mode: routes written into an existing nginx", () => {
  let root: string;
  let existing: string;
  let platform: Platform;
  let plugin: NginxProxyPlugin;
  let httpPort: number;

  const hostCommand = (...args: string[]) => [
    "nginx",
    ...args,
    "-p",
    `${existing}/`,
    "-c",
    join(existing, "nginx.conf"),
  ];

  beforeAll(async () => {
    root = await temporaryDirectory("berth-nginx-include-");
    await chmod(root, 0o755);
    existing = join(root, "existing");
    await mkdir(join(existing, "conf.d"), { recursive: true });
    await mkdir(join(existing, "temp"), { recursive: true });
    httpPort = await freePort();
    await writeFile(
      join(existing, "nginx.conf"),
      [
        `pid ${existing}/nginx.pid;`,
        `error_log ${existing}/error.log;`,
        "worker_processes 1;",
        "events { worker_connections 256; }",
        "http {",
        `  client_body_temp_path ${existing}/temp/body;`,
        `  proxy_temp_path ${existing}/temp/proxy;`,
        `  access_log ${existing}/access.log;`,
        `  server { listen 127.0.0.1:${httpPort} default_server; location / { return 418 "the existing default\\n"; } }`,
        `  include ${existing}/conf.d/*.conf;`,
        "}",
        "",
      ].join("\n"),
    );
    const started = await runProgram(hostCommand());
    expect(started.exitCode, started.output).toBe(0);
    plugin = new NginxProxyPlugin({
      mode: "include",
      includeDir: join(existing, "conf.d"),
      testCommand: hostCommand("-t"),
      reloadCommand: hostCommand("-s", "reload"),
      pidFile: join(existing, "nginx.pid"),
      controlPort: await freePort(),
      httpPort,
      listenAddress: "127.0.0.1",
      workerProcesses: 1,
      directory: join(root, "berth-nginx"),
    });
    platform = new Platform({ dataDir: join(root, "data"), defaults: { scheduler: "fake", proxy: "nginx" } });
    platform.use(new FakeBuilderPlugin()).use(new FakeSchedulerPlugin()).use(plugin);
    await platform.apps.create("site");
    await platform.domains.add("site", ["site.test"]);
  });

  afterAll(async () => {
    await plugin?.proxy.stop();
    const pid = await readMasterPid(join(existing, "nginx.pid"));
    if (pid !== undefined) {
      process.kill(pid, "SIGQUIT");
      await waitForExit([pid], Date.now() + 10_000);
    }
    await rm(root, { recursive: true, force: true });
  });

  it("routes an app through the existing nginx, which keeps its own default server", async () => {
    const source = await sourceFrom({ "body.txt": "site-v1", Procfile: "web: serve" });
    await platform.deploy("site", source);
    await rm(source.dir, { recursive: true, force: true });
    expect(await send(httpPort, "site.test")).toMatchObject({ status: 200, body: "site-v1" });
    expect((await send(httpPort, "unknown.test")).status).toBe(418);
    expect(await readFile(join(existing, "conf.d", "berth.conf"), "utf8")).toContain(
      `include ${join(root, "berth-nginx", "live", "http.conf")};`,
    );
  });

  it("follows domain changes and stops routing a destroyed app", async () => {
    await platform.domains.add("site", ["www.site.test"]);
    expect(await send(httpPort, "www.site.test")).toMatchObject({ status: 200, body: "site-v1" });
    await platform.apps.destroy("site");
    expect((await send(httpPort, "site.test")).status).toBe(418);
    expect((await send(httpPort, "www.site.test")).status).toBe(418);
  });
});
