#!/usr/bin/env node
// Proxy overhead benchmark: throughput and p99 latency of the same keep-alive client against one app container,
// through Berth's nginx (edge + router) and straight to the container's published port, alternating rounds in
// the same run. Prints the medians per target and the ratio nginx/direct (target: >= 0.85).
// Needs: a built monorepo (npm run build), Docker with berth/busybox:latest, nginx. Traffic: 127.0.0.1 only.
//
//   node bench/proxy-overhead.mjs [--rounds 3] [--seconds 5] [--connections 20]
import { mkdtemp, rm } from "node:fs/promises";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchPlatform, docker, get, percentile } from "./load-support.mjs";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "20" },
  },
});
const rounds = Number(values.rounds);
const roundMs = Number(values.seconds) * 1000;
const connections = Number(values.connections);

const image = `berth-bench-proxy-overhead:${process.pid}`;
const app = `pobench-${process.pid % 100000}`;
const host = "proxy-overhead.bench";
const body = "proxy-overhead-body";

/** One round: `connections` keep-alive workers for `roundMs`; the same client code for both targets. */
async function round(port) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies = [];
  let failures = 0;
  const started = performance.now();
  const deadline = started + roundMs;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const begin = performance.now();
        const answer = await get(agent, port, host);
        if (answer.status !== 200 || answer.body !== body) failures += 1;
        latencies.push(performance.now() - begin);
      }
    }),
  );
  agent.destroy();
  const seconds = (performance.now() - started) / 1000;
  return {
    rps: latencies.length / seconds,
    p99: percentile(latencies, 0.99),
    p50: percentile(latencies, 0.5),
    failures,
  };
}

const median = (values) => percentile(values, 0.5);

const { dataDir, httpPort, platform, proxy } = await benchPlatform("proxy-overhead", image);

try {
  await docker(["build", "-q", "-t", image, "-"], "FROM berth/busybox:latest\n");
  await platform.apps.create(app);
  await platform.domains.add(app, [host]);
  await platform.config.set(app, { BODY: body }, { restart: false });
  const source = await mkdtemp(join(tmpdir(), "berth-bench-source-"));
  await platform.deploy(app, { kind: "dir", dir: source });
  await rm(source, { recursive: true, force: true });
  const instance = (await platform.ps.status(app)).find((candidate) => candidate.processType === "web");
  const directPort = instance?.endpoint?.port;
  if (!directPort) throw new Error("the web instance has no published port");

  const results = { nginx: [], direct: [] };
  await round(httpPort); // warm-up, not counted
  for (let index = 0; index < rounds; index += 1) {
    results.nginx.push(await round(httpPort));
    results.direct.push(await round(directPort));
  }
  const summary = (name, list) => {
    const rps = median(list.map((entry) => entry.rps));
    const p99 = median(list.map((entry) => entry.p99));
    const p50 = median(list.map((entry) => entry.p50));
    const failures = list.reduce((sum, entry) => sum + entry.failures, 0);
    console.log(
      `  ${name.padEnd(7)} rps=${rps.toFixed(0)} p50=${p50.toFixed(2)}ms p99=${p99.toFixed(2)}ms failures=${failures} (median of ${list.length} rounds: ${list.map((entry) => entry.rps.toFixed(0)).join(", ")} rps)`,
    );
    return { rps, p99, failures };
  };
  console.log(
    `proxy-overhead: ${connections} keep-alive connections, ${rounds} x ${roundMs / 1000} s rounds per target, 127.0.0.1`,
  );
  const viaNginx = summary("nginx", results.nginx);
  const direct = summary("direct", results.direct);
  console.log(`  throughput ratio nginx/direct: ${(viaNginx.rps / direct.rps).toFixed(2)} (target >= 0.85)`);
  console.log(`  p99 ratio nginx/direct: ${(viaNginx.p99 / direct.p99).toFixed(2)}`);
} finally {
  if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  await proxy.proxy.stop();
  await docker(["image", "rm", "-f", image]).catch(() => undefined);
  await rm(dataDir, { recursive: true, force: true });
}
