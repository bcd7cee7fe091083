import { spawn } from "node:child_process";
import { open, readFile, stat } from "node:fs/promises";
import { request } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { BerthError } from "@berth/core";
import type { ControlListen } from "./render.js";

/** Runs a program with an argv array (never a shell) and collects its output. */
export function runProgram(
  argv: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<{ exitCode: number; output: string }> {
  const [program, ...args] = argv;
  if (!program) throw new BerthError("PROXY_FAILED", "No program given to run.");
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString("utf8");
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(
        new BerthError("PROXY_FAILED", `Could not run ${program}: ${error.message}. Is it installed?`, {
          cause: error,
        }),
      );
    });
    // `exit`, not `close`: a daemonizing nginx leaves a grandchild that may hold the pipes a moment longer.
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      setImmediate(() => resolve({ exitCode: code ?? (signal ? 128 : 1), output }));
    });
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function processTitle(pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).replace(/\0+$/, "").replace(/\0/g, " ");
  } catch {
    return undefined;
  }
}

/** The pid in a pid file, when it names a live nginx master (not a stale file, not a recycled pid). */
export async function readMasterPid(pidFile: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(pidFile, "utf8");
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) return undefined;
  const title = await processTitle(pid);
  return title?.startsWith("nginx: master") ? pid : undefined;
}

/** Worker processes of a master, from /proc (Linux). */
export async function workerPids(masterPid: number): Promise<number[]> {
  let children: string;
  try {
    children = await readFile(`/proc/${masterPid}/task/${masterPid}/children`, "utf8");
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of children.trim().split(/\s+/)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const title = await processTitle(pid);
    if (title?.startsWith("nginx: worker process")) pids.push(pid);
  }
  return pids;
}

/** Asks the control server which generation answers; undefined when nothing answers. */
export function queryGeneration(control: ControlListen, timeoutMs = 1_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const target =
      control.kind === "unix" ? { socketPath: control.path } : { host: "127.0.0.1", port: control.port };
    const outgoing = request(
      {
        ...target,
        path: "/",
        method: "GET",
        agent: false,
        timeout: timeoutMs,
        headers: { Host: "berth-control" },
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => resolve(response.statusCode === 200 ? body.trim() : undefined));
        response.on("error", () => resolve(undefined));
      },
    );
    outgoing.on("timeout", () => outgoing.destroy());
    outgoing.on("error", () => resolve(undefined));
    outgoing.end();
  });
}

/**
 * Polls until the control server answers `generation`. Stops early with the message when `failed()` reports
 * one (the master logged that it could not apply the config). False when the deadline passed first.
 */
export async function waitForGeneration(
  control: ControlListen,
  generation: string,
  deadline: number,
  failed: () => Promise<string | undefined> = async () => undefined,
): Promise<true | { failure: string | undefined }> {
  for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
    if ((await queryGeneration(control)) === generation) return true;
    const failure = await failed();
    if (failure !== undefined || Date.now() >= deadline) return { failure };
    await delay(pause);
  }
}

/** Size of a file now, so that only what is appended afterwards is read. */
export async function fileSize(path: string): Promise<number> {
  return stat(path).then(
    (info) => info.size,
    () => 0,
  );
}

/** The first `[emerg]`/`[alert]` line appended to a log after `offset`, if any. */
export async function emergencySince(path: string, offset: number): Promise<string | undefined> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const size = (await handle.stat()).size;
    if (size <= offset) return undefined;
    const buffer = Buffer.alloc(Math.min(size - offset, 65_536));
    await handle.read(buffer, 0, buffer.length, offset);
    const line = buffer
      .toString("utf8")
      .split("\n")
      .find((candidate) => /\[(emerg|alert)\]/.test(candidate));
    return line === undefined ? undefined : parseNginxError(line).message;
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}

/** Polls until none of `pids` is alive; false when the deadline passed first. */
export async function waitForExit(pids: number[], deadline: number): Promise<boolean> {
  for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
    if (!pids.some(isAlive)) return true;
    if (Date.now() >= deadline) return false;
    await delay(pause);
  }
}

/**
 * Polls until none of the old workers accepts connections any more: each has exited, or has taken the title
 * nginx gives a worker right as it closes its listening sockets. False when the deadline passed first.
 */
export async function waitForStopAccepting(pids: number[], deadline: number): Promise<boolean> {
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    const titles = await Promise.all(pids.map(processTitle));
    if (titles.every((title) => title === undefined || title.includes("shutting down"))) return true;
    if (Date.now() >= deadline) return false;
    await delay(pause);
  }
}

/** The `file:line` nginx names in an `nginx -t` failure, and its message. */
export function parseNginxError(output: string): { message: string; file?: string; line?: number } {
  const emerg = output.split("\n").find((line) => /\[(emerg|alert|crit)\]/.test(line)) ?? output.trim();
  // `nginx: [emerg] …` or `2026/01/01 00:00:00 [emerg] 123#123: …`, optionally ending `in /file:line`.
  const parsed = /\[(?:emerg|alert|crit)\] (?:[0-9]+#[0-9]+: )?(.*?)(?: in (\/\S+):([0-9]+))?$/.exec(
    emerg.trim(),
  );
  if (parsed?.[1] && parsed[2] && parsed[3]) {
    return { message: parsed[1], file: parsed[2], line: Number(parsed[3]) };
  }
  return { message: parsed?.[1] ?? (emerg.replace(/^nginx: /, "").trim() || "nginx rejected the config") };
}
