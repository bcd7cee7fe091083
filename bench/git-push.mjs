#!/usr/bin/env node
// Push of a 1,000-file repository through Berth (smart HTTP and SSH, fake build/scheduler/proxy, so the figure
// is git transport + pre-receive + source extraction + pipeline) against a plain `git push` of the same repository
// to a bare repository over file://, alternating in one process. Prints medians and ratios.
//
//   npm run build -w packages/core -w packages/git && node bench/git-push.mjs [runs]
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Platform } from "@berth/core";
import { FakeBuilderPlugin, FakeProxyPlugin, FakeSchedulerPlugin } from "@berth/core/testing";
import { GitPlugin } from "@berth/git";

const RUNS = Number(process.argv[2] ?? 15);
const FILES = 1000;

function run(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.stdout.resume();
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${stderr}`)),
    );
  });
}

function median(values) {
  const sorted = [...values].sort((left, right) => left - right);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function timed(work) {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const root = await mkdtemp(join(tmpdir(), "berth-bench-git-"));
const home = join(root, "home");
await mkdir(home, { recursive: true });
const env = {
  PATH: process.env.PATH,
  HOME: home,
  GIT_TERMINAL_PROMPT: "0",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "Bench",
  GIT_AUTHOR_EMAIL: "bench@berth.invalid",
  GIT_COMMITTER_NAME: "Bench",
  GIT_COMMITTER_EMAIL: "bench@berth.invalid",
};

// The repository: 1,000 files of 0.5-4 KB text in 25 directories, one commit.
const repo = join(root, "repo");
await run("git", ["init", "-q", "--initial-branch=main", repo], { env });
for (let index = 0; index < FILES; index += 1) {
  const directory = join(repo, `dir-${index % 25}`);
  await mkdir(directory, { recursive: true });
  const line = `file ${index}: ${"lorem ipsum dolor sit amet ".repeat(1 + (index % 7))}\n`;
  await writeFile(join(directory, `file-${index}.txt`), line.repeat(20 + (index % 130)));
}
await writeFile(join(repo, "body.txt"), "bench\n");
await run("git", ["add", "-A"], { cwd: repo, env });
await run("git", ["commit", "-q", "-m", "1,000 files"], { cwd: repo, env });

const dataDir = join(root, "data");
const platform = new Platform({
  dataDir,
  defaults: { scheduler: "fake", proxy: "fake" },
  checks: { uptime: 0 },
});
const git = new GitPlugin();
platform.use(new FakeBuilderPlugin()).use(new FakeSchedulerPlugin()).use(new FakeProxyPlugin()).use(git);
const http = await git.listenHttp();
const ssh = await git.listenSsh();
const { token } = await git.tokens.create("bench");
await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(root, "key")], { env });
await git.keys.add("bench", await readFile(join(root, "key.pub"), "utf8"));
const sshEnv = {
  ...env,
  GIT_SSH_COMMAND: `ssh -i ${join(root, "key")} -p ${ssh.port} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`,
};

// The same over HTTP with sources extracted to disk (`workDir`) rather than the default tmpfs, to show what
// writing 1,000 files to a journaled disk costs.
const diskPlatform = new Platform({
  dataDir: join(root, "data-disk"),
  defaults: { scheduler: "fake", proxy: "fake" },
  checks: { uptime: 0 },
});
const diskWork = join(root, "disk-work");
const diskGit = new GitPlugin({ workDir: diskWork });
diskPlatform
  .use(new FakeBuilderPlugin())
  .use(new FakeSchedulerPlugin())
  .use(new FakeProxyPlugin())
  .use(diskGit);
const diskHttp = await diskGit.listenHttp();
const { token: diskToken } = await diskGit.tokens.create("bench");

const samples = { file: [], http: [], ssh: [], httpDisk: [] };
const push = {
  file: async (index) => {
    const bare = join(root, "bare", `plain-${index}.git`);
    await run("git", ["init", "-q", "--bare", bare], { env });
    return timed(() => run("git", ["push", "-q", `file://${bare}`, "main"], { cwd: repo, env }));
  },
  http: (index) =>
    timed(() =>
      run(
        "git",
        ["push", "-q", `http://bench:${token}@127.0.0.1:${http.port}/bench-http-${index}.git`, "main"],
        {
          cwd: repo,
          env,
        },
      ),
    ),
  ssh: (index) =>
    timed(() =>
      run("git", ["push", "-q", `ssh://berth@127.0.0.1:${ssh.port}/bench-ssh-${index}.git`, "main"], {
        cwd: repo,
        env: sshEnv,
      }),
    ),
  httpDisk: (index) =>
    timed(() =>
      run(
        "git",
        [
          "push",
          "-q",
          `http://bench:${diskToken}@127.0.0.1:${diskHttp.port}/bench-disk-${index}.git`,
          "main",
        ],
        {
          cwd: repo,
          env,
        },
      ),
    ),
};

// One warm-up of each, then alternate so drift on a shared machine hits every kind alike.
for (const kind of Object.keys(push)) await push[kind](-1);
for (let index = 0; index < RUNS; index += 1) {
  for (const kind of Object.keys(push)) samples[kind].push(await push[kind](index));
}

const plain = median(samples.file);
const overHttp = median(samples.http);
const overSsh = median(samples.ssh);
const overHttpDisk = median(samples.httpDisk);
console.log(`git push of a ${FILES}-file repository, ${RUNS} alternating runs each (median):`);
console.log(`  plain git push, file:// bare repo     ${plain.toFixed(1)} ms`);
console.log(
  `  Berth over smart HTTP (fake deploy)   ${overHttp.toFixed(1)} ms   ratio ${(overHttp / plain).toFixed(2)}`,
);
console.log(
  `  Berth over SSH (fake deploy)          ${overSsh.toFixed(1)} ms   ratio ${(overSsh / plain).toFixed(2)}`,
);

console.log(
  `  Berth over HTTP, sources on disk      ${overHttpDisk.toFixed(1)} ms   ratio ${(overHttpDisk / plain).toFixed(2)}`,
);

await git.close();
await diskGit.close();
await rm(root, { recursive: true, force: true });
process.exit(0);
