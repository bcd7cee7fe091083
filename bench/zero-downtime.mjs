#!/usr/bin/env node
// Zero-downtime benchmark: keep-alive load through Berth's nginx while an app is redeployed 10 times with real
// containers. Prints requests, failures and p50/p99 latency, against a baseline phase of the same run with no
// deploy. Needs: a built monorepo (npm run build), Docker with berth/busybox:latest, nginx. Traffic: 127.0.0.1.
//
//   node bench/zero-downtime.mjs [--deploys 10] [--connections 20] [--baseline-seconds 5] [--keep]
import { mkdtemp, rm } from "node:fs/promises";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchPlatform, docker, get, percentile } from "./load-support.mjs";

const { values } = parseArgs({
  options: {
    deploys: { type: "string", default: "10" },
    connections: { type: "string", default: "20" },
    "baseline-seconds": { type: "string", default: "5" },
    keep: { type: "boolean", default: false },
  },
});
const deploys = Number(values.deploys);
const connections = Number(values.connections);
const baselineMs = Number(values["baseline-seconds"]) * 1000;

const image = `berth-bench-zero-downtime:${process.pid}`;
const app = `zdbench-${process.pid % 100000}`;
const host = "zero-downtime.bench";

/** `connections` workers sending back to back until `phase.stop` is set; no retries of any kind. */
function load(port, accept) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const phases = [];
  let phase;
  const begin = (name) => {
    const now = performance.now();
    if (phase) phase.durationMs = now - phase.started;
    phase = { name, started: now, requests: 0, failures: 0, latencies: [], samples: [] };
    phases.push(phase);
  };
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const started = performance.now();
      const answer = await get(agent, port, host);
      const current = phase;
      current.requests += 1;
      current.latencies.push(performance.now() - started);
      const failed = answer.error
        ? answer.error.message
        : accept(answer.status, answer.body)
          ? ""
          : `${answer.status} ${answer.body.slice(0, 40)}`;
      if (failed) {
        current.failures += 1;
        if (current.samples.length < 5) current.samples.push(failed);
      }
    }
  };
  begin("baseline");
  const done = Promise.all(Array.from({ length: connections }, worker)).then(() => {
    agent.destroy();
    return phases;
  });
  return {
    begin,
    stop: () => {
      phase.durationMs = performance.now() - phase.started;
      stopped = true;
      return done;
    },
  };
}

const { dataDir, httpPort, platform, proxy } = await benchPlatform("zero-downtime", image);

const bodies = new Set();
const deploy = async (body) => {
  bodies.add(body);
  await platform.config.set(app, { BODY: body }, { restart: false });
  const source = await mkdtemp(join(tmpdir(), "berth-bench-source-"));
  try {
    await platform.deploy(app, { kind: "dir", dir: source });
  } finally {
    await rm(source, { recursive: true, force: true });
  }
};

try {
  await docker(["build", "-q", "-t", image, "-"], "FROM berth/busybox:latest\n");
  await platform.apps.create(app);
  await platform.domains.add(app, [host]);
  await deploy("version-0");
  const run = load(httpPort, (status, body) => status === 200 && bodies.has(body));
  await new Promise((resolve) => setTimeout(resolve, baselineMs));
  run.begin("redeploys");
  const deployStarted = performance.now();
  for (let index = 1; index <= deploys; index += 1) await deploy(`version-${index}`);
  const deploySeconds = (performance.now() - deployStarted) / 1000;
  const phases = await run.stop();
  console.log(
    `zero-downtime: ${deploys} redeploys in ${deploySeconds.toFixed(1)} s, ${connections} keep-alive connections, 127.0.0.1`,
  );
  for (const phase of phases) {
    const seconds = phase.durationMs / 1000;
    console.log(
      `  ${phase.name.padEnd(10)} requests=${phase.requests} failures=${phase.failures} ` +
        `rps=${(phase.requests / seconds).toFixed(0)} p50=${percentile(phase.latencies, 0.5).toFixed(2)}ms ` +
        `p99=${percentile(phase.latencies, 0.99).toFixed(2)}ms${phase.samples.length ? ` samples=${JSON.stringify(phase.samples)}` : ""}`,
    );
  }
  const [baseline, redeploys] = phases;
  const ratio =
    redeploys.requests / (redeploys.durationMs / 1000) / (baseline.requests / (baseline.durationMs / 1000));
  console.log(`  throughput during redeploys / baseline: ${ratio.toFixed(2)}`);
  console.log(
    `  total requests=${baseline.requests + redeploys.requests} failures=${baseline.failures + redeploys.failures}`,
  );
  process.exitCode = baseline.failures + redeploys.failures === 0 ? 0 : 1;
} finally {
  if (await platform.apps.exists(app)) await platform.apps.destroy(app);
  await proxy.proxy.stop();
  await docker(["image", "rm", "-f", image]).catch(() => undefined);
  if (!values.keep) await rm(dataDir, { recursive: true, force: true });
  else console.log(`  kept ${dataDir}`);
}
