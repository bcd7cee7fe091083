#!/usr/bin/env node
// End-to-end deploy benchmark of the reference platform (@berth/cli), same run, same machine:
//
//   1. `git push` → the URL serves the new version, for examples/apps/dockerfile-hello:
//        berth:  git push over HTTP to `berth daemon` (build, release, start, health check, nginx switch, retire)
//        floor:  by hand: git push to a bare repo, checkout, docker build, docker run, nginx reload, first 200
//   2. the daemon's RSS idle, and its peak while a deploy runs
//   3. `apps:list` latency with 500 apps (API round trip, and the CLI process as a user runs it)
//
//   node bench/e2e-deploy.mjs [--runs 5] [--apps 500]
//
// Needs the build (npx turbo run build), Docker, nginx and git (bash scripts/setup-host). Traffic: 127.0.0.1 only.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const exec = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(repo, "packages", "cli", "dist", "bin.js");
const sample = join(repo, "examples", "apps", "dockerfile-hello");
const argument = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
};
const runs = argument("runs", 5);
const appCount = argument("apps", 500);
const tag = randomBytes(3).toString("hex");
const root = await mkdtemp(join(tmpdir(), "bbench-"));
await chmod(root, 0o755);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const ms = (value) => `${value.toFixed(0)} ms`;
const sleep = (milliseconds) => new Promise((done) => setTimeout(done, milliseconds));

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

function get(port, host, path = "/") {
  return new Promise((done) => {
    const outgoing = request(
      { host: "127.0.0.1", port, path, headers: { host }, timeout: 5000 },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          body += chunk;
        });
        response.on("end", () => done({ status: response.statusCode, body }));
      },
    );
    outgoing.on("timeout", () => outgoing.destroy());
    outgoing.on("error", () => done({ status: 0, body: "" }));
    outgoing.end();
  });
}

async function waitForBody(port, host, text, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answer = await get(port, host);
    if (answer.status === 200 && answer.body.includes(text)) return;
    await sleep(20);
  }
  throw new Error(`${host} never served ${text}`);
}

function run(file, args, options = {}) {
  return new Promise((done, fail) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    child.on("close", (code) =>
      code === 0 ? done(output) : fail(new Error(`${file} ${args.join(" ")} failed:\n${output}`)),
    );
  });
}

const git = (cwd, ...args) =>
  run("git", ["-c", "user.name=bench", "-c", "user.email=bench@berth.localhost", ...args], { cwd });

/** A work tree of the sample app whose page says `version`. */
async function writeVersion(dir, version) {
  await writeFile(join(dir, "www", "index.html"), `Hello from Berth! (dockerfile-hello ${version})\n`);
  await git(dir, "add", "-A");
  await git(dir, "commit", "-q", "-m", version);
}

// --- Berth ---
const ports = {
  http: await freePort(),
  https: await freePort(),
  git: await freePort(),
  ssh: await freePort(),
};
const dataDir = join(root, "data");
const config = join(root, "berth.config.json");
await writeFile(
  config,
  JSON.stringify({
    dataDir,
    proxy: { httpPort: ports.http, httpsPort: ports.https, listen: "127.0.0.1" },
    git: { httpPort: ports.git, sshPort: ports.ssh, host: "127.0.0.1" },
  }),
);
const socket = join(dataDir, "berth.sock");
const berth = (...args) =>
  run(process.execPath, [bin, ...args], { env: { ...process.env, BERTH_SOCKET: socket } });
const daemon = spawn(process.execPath, [bin, "daemon", "--config", config], {
  stdio: ["ignore", "ignore", "pipe"],
});
let daemonLog = "";
daemon.stderr.on("data", (chunk) => {
  daemonLog += chunk;
});
for (let attempt = 0; ; attempt += 1) {
  try {
    await berth("apps:list");
    break;
  } catch {
    if (attempt > 200) throw new Error(`the daemon did not start:\n${daemonLog}`);
    await sleep(100);
  }
}
async function rssMegabytes(pid) {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
}

const app = `bench-${tag}`;
const host = `${app}.berth.localhost`;
await berth("apps:create", app);
const token = (await berth("tokens:create", "bench")).trim();
const [user, secret] = [token.slice(0, token.indexOf(":")), token.slice(token.indexOf(":") + 1)];
const berthTree = join(root, "berth-tree");
await cp(sample, berthTree, { recursive: true });
await git(berthTree, "init", "-q", "-b", "main");
const pushUrl = `http://${user}:${secret}@127.0.0.1:${ports.git}/${app}.git`;

await writeVersion(berthTree, "warm-up");
await git(berthTree, "push", "-q", "--force", pushUrl, "HEAD:main");
await waitForBody(ports.http, host, "warm-up");
await sleep(2000);
const idleRss = await rssMegabytes(daemon.pid);

const berthTimes = [];
const phases = [];
let peakRss = idleRss;
async function berthDeploy(index) {
  const version = `berth-${index}-${randomBytes(2).toString("hex")}`;
  await writeVersion(berthTree, version);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakRss = Math.max(peakRss, await rssMegabytes(daemon.pid));
      await sleep(25);
    }
  })();
  const started = performance.now();
  const startedWall = Date.now();
  // The clock stops when the URL serves the new version (the push itself returns later, after retiring v-1).
  const servedAt = waitForBody(ports.http, host, version).then(() => ({
    at: performance.now(),
    wall: Date.now(),
  }));
  await git(berthTree, "push", "-q", "--force", pushUrl, "HEAD:main");
  const served = await servedAt;
  berthTimes.push(served.at - started);
  // Where the time went, from the daemon's event log (one line per pipeline step).
  const events = (await readFile(join(dataDir, "events.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line))
    .filter((event) => event.app === app && Date.parse(event.time) >= startedWall);
  const at = (type) => Date.parse(events.find((event) => event.type === type)?.time ?? "") - startedWall;
  phases.push({
    receive: at("deploy.started"),
    build: at("build.succeeded") - at("deploy.started"),
    startCheckRoute: served.wall - startedWall - at("build.succeeded"),
  });
  sampling = false;
  await sampler;
}

// --- the by-hand floor: the same steps with nothing around them ---
const floorDir = join(root, "floor");
const bare = join(floorDir, "app.git");
const checkout = join(floorDir, "checkout");
const floorTree = join(floorDir, "tree");
await mkdir(checkout, { recursive: true });
await run("git", ["init", "-q", "--bare", bare]);
await cp(sample, floorTree, { recursive: true });
await git(floorTree, "init", "-q", "-b", "main");
const floorPort = await freePort();
const nginxPrefix = join(floorDir, "nginx");
await mkdir(join(nginxPrefix, "logs"), { recursive: true });
const nginxConf = join(nginxPrefix, "nginx.conf");
const floorHost = `floor-${tag}.localhost`;
const writeNginx = (upstreamPort) =>
  writeFile(
    nginxConf,
    `pid ${nginxPrefix}/nginx.pid;\nerror_log ${nginxPrefix}/logs/error.log;\nevents {}\nhttp {\n  access_log off;\n  server {\n    listen 127.0.0.1:${floorPort};\n    server_name ${floorHost};\n    location / { proxy_pass http://127.0.0.1:${upstreamPort}; }\n  }\n}\n`,
  );
const floorImage = `berth-bench/floor-${tag}`;
const floorContainers = [];
await writeNginx(9);
await run("nginx", ["-p", nginxPrefix, "-c", nginxConf]);

async function floorDeploy(version) {
  await writeVersion(floorTree, version);
  const started = performance.now();
  await git(floorTree, "push", "-q", "--force", bare, "HEAD:main");
  await rm(checkout, { recursive: true, force: true });
  await mkdir(checkout);
  await run("sh", ["-c", 'git --git-dir="$1" archive main | tar -x -C "$2"', "sh", bare, checkout]);
  await run("docker", ["build", "-q", "-t", `${floorImage}:${version}`, checkout]);
  const container = (
    await run("docker", [
      "run",
      "-d",
      "--name",
      `berth-bench-floor-${tag}-${version}`,
      "-p",
      "127.0.0.1::5000",
      `${floorImage}:${version}`,
    ])
  ).trim();
  floorContainers.push(container);
  const published = (await run("docker", ["port", container, "5000/tcp"])).trim().split("\n")[0];
  await writeNginx(Number(published.split(":").pop()));
  await run("nginx", ["-s", "reload", "-p", nginxPrefix, "-c", nginxConf]);
  await waitForBody(floorPort, floorHost, version);
  return performance.now() - started;
}

await floorDeploy("warm-up");
const floorTimes = [];
// Interleaved, so load from other work on the machine hits both sides alike.
for (let index = 1; index <= runs; index += 1) {
  await berthDeploy(index);
  floorTimes.push(await floorDeploy(`floor-${index}-${randomBytes(2).toString("hex")}`));
}

// --- clean up what this run made, nothing else ---
for (const container of floorContainers) await exec("docker", ["rm", "-f", container]).catch(() => {});
await exec("sh", ["-c", `docker images -q '${floorImage}' | sort -u | xargs -r docker rmi -f`]).catch(
  () => {},
);
await run("nginx", ["-s", "quit", "-p", nginxPrefix, "-c", nginxConf]).catch(() => {});
await berth("apps:destroy", app, "--force");
daemon.kill("SIGTERM");
await new Promise((done) => daemon.once("exit", done));
// Berth's nginx masters outlive the daemon by design; this run ends its own by their pid files.
const runDir = join(dataDir, "nginx", "run");
for (const file of (await readdir(runDir).catch(() => [])).filter((name) => name.endsWith(".pid"))) {
  const pid = Number((await readFile(join(runDir, file), "utf8").catch(() => "0")).trim());
  if (pid > 0) {
    try {
      process.kill(pid, "SIGQUIT");
    } catch {}
  }
}

// --- apps:list with many apps ---
// scheduler-docker makes one Docker network per app at creation, and a default engine has address pools for
// about 30 networks; so the 500 apps live in a daemon composed without it (apps:list only reads the store).
const listData = join(root, "list-data");
const listConfig = join(root, "list.config.json");
await writeFile(
  listConfig,
  JSON.stringify({
    dataDir: listData,
    disable: ["scheduler-docker", "proxy-nginx"],
    git: { httpPort: await freePort(), sshPort: await freePort(), host: "127.0.0.1" },
  }),
);
const listSocket = join(listData, "berth.sock");
const listDaemon = spawn(process.execPath, [bin, "daemon", "--config", listConfig], { stdio: "ignore" });
const listBerth = (...args) =>
  run(process.execPath, [bin, ...args], { env: { ...process.env, BERTH_SOCKET: listSocket } });
for (let attempt = 0; ; attempt += 1) {
  try {
    await listBerth("apps:list");
    break;
  } catch (error) {
    if (attempt > 200) throw error;
    await sleep(100);
  }
}
function api(path, body) {
  return new Promise((done, fail) => {
    const outgoing = request(
      { socketPath: listSocket, path, method: "POST", headers: { "content-type": "application/json" } },
      (response) => {
        let text = "";
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () => (response.statusCode === 200 ? done(text) : fail(new Error(text))));
      },
    );
    outgoing.on("error", fail);
    outgoing.end(JSON.stringify(body));
  });
}
const many = [];
for (let index = 0; index < appCount; index += 1) many.push(`bench-${tag}-${String(index).padStart(3, "0")}`);
for (let index = 0; index < many.length; index += 25) {
  await Promise.all(
    many.slice(index, index + 25).map((name) => api("/v1/commands/apps:create", { args: [name] })),
  );
}
const apiTimes = [];
const cliTimes = [];
for (let index = 0; index < 20; index += 1) {
  let started = performance.now();
  const listed = await api("/v1/commands/apps:list", {});
  apiTimes.push(performance.now() - started);
  if (!listed.includes(many.at(-1))) throw new Error("apps:list missed apps");
  started = performance.now();
  await listBerth("apps:list");
  cliTimes.push(performance.now() - started);
}
const nodeStartTimes = [];
for (let index = 0; index < 10; index += 1) {
  const started = performance.now();
  await run(process.execPath, ["-e", ""]);
  nodeStartTimes.push(performance.now() - started);
}

const listRss = await rssMegabytes(listDaemon.pid);
listDaemon.kill("SIGTERM");
await new Promise((done) => listDaemon.once("exit", done));
await sleep(300);
await rm(root, { recursive: true, force: true });

const berthMedian = median(berthTimes);
const floorMedian = median(floorTimes);
console.log(`bench/e2e-deploy (${runs} runs each, medians; node ${process.version})`);
console.log(
  `  git push → new version served, Berth:      ${ms(berthMedian)}   (runs: ${berthTimes.map(ms).join(", ")})`,
);
console.log(
  `  git push → new version served, by hand:    ${ms(floorMedian)}   (runs: ${floorTimes.map(ms).join(", ")})`,
);
console.log(
  `    Berth phases (medians): push received → deploy started ${ms(median(phases.map((phase) => phase.receive)))}, build ${ms(median(phases.map((phase) => phase.build)))}, release + start + checks + nginx switch ${ms(median(phases.map((phase) => phase.startCheckRoute)))}`,
);
console.log(
  `  ratio Berth / floor:                        ${(berthMedian / floorMedian).toFixed(2)}x   (target ≤ 1.15x)`,
);
console.log(`  daemon RSS idle:                            ${idleRss.toFixed(1)} MB   (target ≤ 100 MB)`);
console.log(`  daemon RSS peak during deploys:             ${peakRss.toFixed(1)} MB`);
console.log(`  apps:list with ${appCount} apps, API round trip: ${ms(median(apiTimes))}   (target ≤ 150 ms)`);
console.log(
  `  apps:list with ${appCount} apps, CLI process:    ${ms(median(cliTimes))}   (of which node start-up ≈ ${ms(median(nodeStartTimes))})`,
);
console.log(`  daemon RSS with ${appCount} apps (no Docker scheduler): ${listRss.toFixed(1)} MB`);
