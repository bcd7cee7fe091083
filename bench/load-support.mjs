// Shared by the proxy benchmarks: a free loopback port, the docker CLI, one keep-alive GET, percentiles, and
// the web command of their busybox app. Traffic goes to 127.0.0.1 only.
import { execFile } from "node:child_process";
import { chmod, mkdtemp } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Platform } from "@berth/core";
import { nginxProxy } from "@berth/proxy-nginx";
import { dockerScheduler } from "@berth/scheduler-docker";

/** The busybox app both benchmarks run: serves $BODY on $PORT. */
export const webCommand =
  'mkdir -p /tmp/www && printf "%s" "$BODY" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function docker(args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile("docker", args, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    if (input !== undefined) child.stdin.end(input);
  });
}

/** One GET of `/` for `host` on a keep-alive agent; resolves { status, body } or { error }. */
export function get(agent, port, host) {
  return new Promise((resolve) => {
    const outgoing = request(
      { host: "127.0.0.1", port, path: "/", agent, headers: { Host: host } },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          body += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode, body }));
        response.on("error", (error) => resolve({ error }));
      },
    );
    outgoing.on("error", (error) => resolve({ error }));
    outgoing.end();
  });
}

/** The value below which `fraction` of the values fall (nearest rank). */
export function percentile(values, fraction) {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}

/**
 * A platform on the real engine and a private nginx on a free loopback port, whose "builder" hands out `image`
 * running the busybox web command: both benchmarks measure routing, not building.
 */
export async function benchPlatform(name, image) {
  const dataDir = await mkdtemp(join(tmpdir(), `berth-bench-${name}-`));
  // nginx workers (nobody) must reach the router's sockets under it.
  await chmod(dataDir, 0o755);
  const httpPort = await freePort();
  const proxy = nginxProxy({
    httpPort,
    httpsPort: await freePort(),
    listenAddress: "127.0.0.1",
    workerProcesses: 1,
  });
  const platform = new Platform({
    dataDir,
    defaults: { scheduler: "docker", proxy: "nginx" },
    checks: { uptime: 1 },
  })
    .use({
      name: "builder-bench",
      apply: (target) =>
        target.hooks.build.tapPromise("builder-bench", async () => ({
          builder: "bench",
          image,
          ports: [5000],
          defaultProcessTypes: { web: webCommand },
        })),
    })
    .use(dockerScheduler({ stopGracePeriodSeconds: 2 }))
    .use(proxy);
  return { dataDir, httpPort, platform, proxy };
}
