import { spawn } from "node:child_process";
import { BerthError } from "@berth/core";

export interface RunGitOptions {
  cwd?: string;
  /** Added to the environment of the git process. */
  env?: Record<string, string | undefined>;
  /** Standard input for git, written whole. */
  input?: string;
  /** Exit codes that are answers rather than failures (`rev-parse --verify -q` answers 1 for "no such ref"). */
  allowedExitCodes?: number[];
  timeoutMs?: number;
}

export interface RunGitResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The environment every git process Berth starts runs with: never prompt, never read the user's config. */
export function gitEnvironment(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_CONFIG_NOSYSTEM: "1" };
  // A caller's GIT_DIR or quarantine variables must never leak into a git process aimed at another repo.
  for (const name of [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
  ]) {
    delete env[name];
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Runs `git` with an argument vector (never a shell) and collects its output. */
export function runGit(args: string[], options: RunGitOptions = {}): Promise<RunGitResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, {
      cwd: options.cwd,
      env: gitEnvironment(options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(
        new BerthError("GIT_FAILED", `Could not run git: ${error.message}. Is git installed?`, {
          cause: error,
        }),
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const exitCode = code ?? 128;
      if (exitCode === 0 || options.allowedExitCodes?.includes(exitCode)) {
        resolve({ exitCode, stdout, stderr });
        return;
      }
      reject(
        new BerthError(
          "GIT_FAILED",
          `git ${args[0]} failed${signal ? ` (killed by ${signal})` : ` with exit code ${exitCode}`}: ${stderr.trim() || stdout.trim()}`,
          { details: { args, exitCode, stderr } },
        ),
      );
    });
    child.stdin.on("error", () => {
      // git may exit before reading its input; the exit code tells what happened.
    });
    child.stdin.end(options.input ?? "");
  });
}
