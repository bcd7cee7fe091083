#!/usr/bin/env node
// Deploy wall time of a small Dockerfile app (warm layer cache): Berth (builder-dockerfile + scheduler-docker,
// through the whole pipeline: build, release, start, health check, retire, prune) against the same work by hand
// with the docker CLI (build, run -p 127.0.0.1::PORT, poll until the first 200). Runs alternate; each run uses
// its own app, image and container names, and everything is removed afterwards.
//
//   npm run build && node bench/deploy-docker.mjs [runs]      (default 7 runs of each)
//
// A third series does by hand what Berth asks of the engine beyond the bare minimum (image labels, --init, a
// restart policy, the app's own network), to tell Berth's own overhead from the cost of those features.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { dockerfileBuilder } from "@berth/builder-dockerfile";
import { Platform } from "@berth/core";
import { dockerScheduler } from "@berth/scheduler-docker";

const run = promisify(execFile);
const runs = Number(process.argv[2] ?? 7);
const tag = process.pid.toString(36);

const dockerfile = `FROM berth/busybox:latest
COPY body.txt start.sh /srv/
EXPOSE 8080
CMD ["sh", "/srv/start.sh"]
`;
const start = `mkdir -p /tmp/www && cat /srv/body.txt > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www\n`;

async function makeSource() {
  const dir = await mkdtemp(join(tmpdir(), "berth-bench-source-"));
  await writeFile(join(dir, "Dockerfile"), dockerfile);
  await writeFile(join(dir, "start.sh"), start);
  await writeFile(join(dir, "body.txt"), "hello from the benchmark\n");
  return dir;
}

function sleep(milliseconds) {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

async function firstOk(url, deadline) {
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.text();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 in time`);
    await sleep(10);
  }
}

/**
 * `equivalent` does by hand what Berth asks of the engine besides the bare minimum: the image labels the builder
 * adds, and the container settings the scheduler uses (--init, a restart policy, labels, the app's network,
 * created beforehand as Berth does when the app is created).
 */
async function byHand(dir, index, equivalent) {
  const name = `berth-bench-${equivalent ? "same" : "hand"}-${tag}-${index}`;
  const image = `${name}:v1`;
  const container = name;
  const labels = equivalent ? ["--label", `berth.app=${name}`, "--label", "berth.release=v1"] : [];
  if (equivalent) await run("docker", ["network", "create", name]);
  const started = performance.now();
  try {
    await run("docker", ["build", "-q", "-t", image, ...labels, dir]);
    await run("docker", [
      "run",
      "-d",
      "--name",
      container,
      "-e",
      "PORT=8080",
      "-e",
      "DYNO=web.1",
      "-p",
      "127.0.0.1::8080",
      ...(equivalent ? ["--init", "--restart", "on-failure:10", "--network", name, ...labels] : []),
      image,
    ]);
    const { stdout } = await run("docker", ["port", container, "8080/tcp"]);
    const port = stdout.trim().split("\n")[0].split(":").pop();
    await firstOk(`http://127.0.0.1:${port}/`, Date.now() + 30_000);
    return performance.now() - started;
  } finally {
    await run("docker", ["rm", "-f", container]).catch(() => undefined);
    await run("docker", ["image", "rm", "-f", image]).catch(() => undefined);
    if (equivalent) await run("docker", ["network", "rm", name]).catch(() => undefined);
  }
}

const dataDir = await mkdtemp(join(tmpdir(), "berth-bench-data-"));
const platform = new Platform({ dataDir, defaults: { scheduler: "docker" } })
  .use(dockerfileBuilder())
  .use(dockerScheduler());

async function withBerth(dir, index) {
  const app = `bench-${tag}-${index}`;
  await platform.apps.create(app);
  const started = performance.now();
  await platform.deploy(app, { kind: "dir", dir });
  const elapsed = performance.now() - started;
  const [web] = await platform.ps.status(app);
  const response = await fetch(`http://${web.endpoint.host}:${web.endpoint.port}/`);
  if (response.status !== 200) throw new Error(`Berth's deploy answered ${response.status}`);
  await response.text();
  return elapsed;
}

function median(values) {
  const sorted = [...values].sort((left, right) => left - right);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const dir = await makeSource();
try {
  // Warm the layer cache (and both code paths) once; not measured.
  await run("docker", ["build", "-q", "-t", `berth-bench-warm-${tag}:latest`, dir]);
  await byHand(dir, "warm", false);
  await byHand(dir, "warm", true);
  await withBerth(dir, "warm");

  const measured = { berth: [], hand: [], same: [] };
  const kinds = ["berth", "hand", "same"];
  for (let index = 0; index < runs; index += 1) {
    // Rotate which goes first, so none always runs on a machine another just warmed.
    const order = kinds.map((_kind, position) => kinds[(position + index) % kinds.length]);
    for (const kind of order) {
      if (kind === "berth") measured.berth.push(await withBerth(dir, index));
      else measured[kind].push(await byHand(dir, index, kind === "same"));
    }
    console.log(
      `run ${index + 1}/${runs}: berth ${measured.berth.at(-1).toFixed(0)} ms, by hand ${measured.hand
        .at(-1)
        .toFixed(0)} ms, by hand with Berth's settings ${measured.same.at(-1).toFixed(0)} ms`,
    );
  }
  const berthMedian = median(measured.berth);
  const handMedian = median(measured.hand);
  const sameMedian = median(measured.same);
  console.log(
    `\nBerth deploy (build, release, start, health check, retire, prune): median ${berthMedian.toFixed(0)} ms`,
  );
  console.log(
    `By hand (docker build, docker run -p 127.0.0.1::8080, first 200):    median ${handMedian.toFixed(0)} ms`,
  );
  console.log(
    `By hand with Berth's labels, --init, restart policy, app network:    median ${sameMedian.toFixed(0)} ms`,
  );
  console.log(`ratio Berth / by hand: ${(berthMedian / handMedian).toFixed(2)} (target ≤ 1.15)`);
  console.log(`ratio Berth / by hand with the same settings: ${(berthMedian / sameMedian).toFixed(2)}`);
} finally {
  // Apps go only at the end: destroying an app removes its images, and with them the layer cache later runs use.
  for (const app of await platform.apps.list()) {
    await platform.apps.destroy(app).catch((error) => console.error(`cleanup of ${app}: ${error.message}`));
  }
  await rm(dataDir, { recursive: true, force: true });
  await run("docker", ["image", "rm", "-f", `berth-bench-warm-${tag}:latest`]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
