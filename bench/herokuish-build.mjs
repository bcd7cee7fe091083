#!/usr/bin/env node
// Benchmark of @berth/builder-herokuish (run `npx tsup` in packages/builder-herokuish first):
//   1. first build (empty cache) vs a rebuild of the unchanged app with the cache warm   target: ratio <= 0.5
//   2. Berth's first build vs the same buildpack's scripts run by hand in a plain container of the same stack
//      image (bind-mounted source and buildpack, detect + compile + release as root, then docker commit)
//                                                                                          target: ratio <= 1.2
// The app's compile step does real work: it generates and xz-compresses its dependencies (examples/buildpacks/vendor).
//
//   node bench/herokuish-build.mjs [--runs 3] [--size 2]   (size: MB per dependency, 3 dependencies)
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildStackImage, herokuishBuilder } from "@berth/builder-herokuish";
import { Output, Platform } from "@berth/core";
import Docker from "dockerode";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "3" }, size: { type: "string", default: "2" } },
});
const runs = Number(values.runs);
const size = Number(values.size);
const root = fileURLToPath(new URL("..", import.meta.url));
const vendorBuildpack = join(root, "examples", "buildpacks", "vendor");
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const app = `bench-herokuish-${process.pid % 10000}`;
const stackImage = "berth/stack:bookworm";

const median = (numbers) => {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;

await buildStackImage();
const dataDir = await mkdtemp(join(tmpdir(), "berth-bench-herokuish-"));
const source = await mkdtemp(join(tmpdir(), "berth-bench-herokuish-source-"));
await cp(join(root, "examples", "apps", "buildpack-vendor"), source, { recursive: true });
await writeFile(join(source, "deps.txt"), `alpha ${size}\nbeta ${size}\ngamma ${size}\n`);
const platform = new Platform({ dataDir, defaults: { scheduler: "none" } });
platform.use(herokuishBuilder({ buildpacks: [vendorBuildpack] }));
await platform.apps.create(app);
const settings = await platform.apps.get(app);
let version = 0;
let lastPhases = {};
const firstPhases = [];

async function berthBuild() {
  version += 1;
  const started = performance.now();
  const artifact = await platform.hooks.build.promise({
    platform,
    app: settings,
    output: new Output(),
    signal: new AbortController().signal,
    source: { kind: "dir", dir: source },
    version,
    builder: undefined,
    config: {},
  });
  const elapsed = performance.now() - started;
  if (!artifact) throw new Error("the vendor buildpack did not claim the app");
  await docker.getImage(artifact.image).remove({ force: true });
  lastPhases = artifact.metadata?.phases ?? {};
  return elapsed;
}

/** What someone would type by hand: the buildpack's three scripts in a plain container, then a commit. */
async function byHand() {
  const cache = await mkdtemp(join(tmpdir(), "berth-bench-herokuish-cache-"));
  const started = performance.now();
  const container = await docker.createContainer({
    Image: stackImage,
    Cmd: [
      "bash",
      "-c",
      "set -e; mkdir -p /app /tmp/env; cp -a /src/. /app/; cd /app; /buildpack/bin/detect /app >/dev/null; " +
        "/buildpack/bin/compile /app /cache /tmp/env >/dev/null; /buildpack/bin/release /app >/dev/null",
    ],
    HostConfig: {
      // A copy of the buildpack is writable (its compile writes an `export` file), as in a real build.
      Binds: [`${source}:/src:ro`, `${cache}:/cache`, `${vendorBuildpack}:/buildpack-ro:ro`],
    },
    Entrypoint: ["bash", "-c", 'cp -a /buildpack-ro /buildpack && exec "$@"', "by-hand"],
  });
  await container.start();
  const { StatusCode } = await container.wait();
  if (StatusCode !== 0) throw new Error(`the hand-run build exited with ${StatusCode}`);
  const image = await container.commit({ repo: `berth/${app}-by-hand`, tag: `r${version}` });
  const elapsed = performance.now() - started;
  await container.remove({ force: true });
  await docker.getImage(image.Id).remove({ force: true });
  await rm(cache, { recursive: true, force: true });
  return elapsed;
}

const first = [];
const warm = [];
const manual = [];
try {
  for (let run = 1; run <= runs; run += 1) {
    await rm(join(dataDir, "cache", app), { recursive: true, force: true });
    first.push(await berthBuild());
    firstPhases.push(lastPhases);
    warm.push(await berthBuild());
    manual.push(await byHand());
    console.log(
      `run ${run}/${runs}: first ${seconds(first.at(-1))}, warm rebuild ${seconds(warm.at(-1))}, by hand ${seconds(manual.at(-1))}`,
    );
  }
} finally {
  await platform.apps.destroy(app).catch(() => {});
  await rm(dataDir, { recursive: true, force: true });
  await rm(source, { recursive: true, force: true });
}

const firstMedian = median(first);
const warmMedian = median(warm);
const manualMedian = median(manual);
console.log(
  `\nherokuish build, vendor app (3 deps x ${size} MB generated and xz-compressed), ${runs} runs, medians:`,
);
console.log(`  first build (empty cache)        ${seconds(firstMedian)}`);
console.log(`  rebuild, cache warm              ${seconds(warmMedian)}`);
console.log(`  warm / first                     ${(warmMedian / firstMedian).toFixed(2)}   (target <= 0.5)`);
console.log(`  same scripts by hand (cold)      ${seconds(manualMedian)}`);
console.log(
  `  Berth first build / by hand      ${(firstMedian / manualMedian).toFixed(2)}   (target <= 1.2)`,
);
const phaseNames = Object.keys(firstPhases[0] ?? {});
console.log(
  `  first build phases (median s)    ${phaseNames.map((name) => `${name} ${median(firstPhases.map((phases) => phases[name] ?? 0)).toFixed(2)}`).join(", ")}`,
);
