import { chmod, rm } from "node:fs/promises";
import { temporaryDirectory, testProxy } from "@berth/core/testing";
import { afterAll, beforeAll } from "vitest";
import { NginxProxyPlugin } from "./plugin.js";
import { freePort, send } from "./test-helpers.js";

let httpPort = 0;
let directory = "";
let plugin: NginxProxyPlugin | undefined;

beforeAll(async () => {
  httpPort = await freePort();
  // Outside the suite's data dir, so the master can be stopped after the suite removed that dir.
  directory = await temporaryDirectory("berth-nginx-conformance-");
  // nginx workers (nobody) must reach the router's sockets under it.
  await chmod(directory, 0o755);
});

afterAll(async () => {
  await plugin?.proxy.stop();
  await rm(directory, { recursive: true, force: true });
});

testProxy({
  proxyName: "nginx",
  plugin: () => {
    plugin = new NginxProxyPlugin({
      httpPort,
      httpsPort: httpPort + 1,
      listenAddress: "127.0.0.1",
      workerProcesses: 1,
      directory,
    });
    return plugin;
  },
  request: async (host, path) => {
    const answer = await send(httpPort, host, { path: path ?? "/" });
    return { status: answer.status, body: answer.body };
  },
});
