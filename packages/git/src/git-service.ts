import { spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { GitSession } from "./receiver.js";
import { gitEnvironment } from "./run-git.js";

export interface ServiceStreams {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

/**
 * Runs `git receive-pack|upload-pack REPO` for an authorised session over the given streams (an SSH channel)
 * and resolves with git's exit code. Git is started with an argument vector, never through a shell.
 */
export function serveGitSession(
  session: GitSession,
  streams: ServiceStreams,
  extraArgs: string[] = [],
): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("git", [session.service, ...extraArgs, session.repoDir], {
      env: gitEnvironment(session.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    streams.stdin.pipe(child.stdin);
    child.stdin.on("error", () => {
      // The client hung up; git's exit code tells the rest.
    });
    child.stdout.pipe(streams.stdout, { end: false });
    child.stderr.pipe(streams.stderr, { end: false });
    child.on("error", (error) => {
      streams.stderr.write(`Could not run git: ${error.message}\n`);
    });
    child.on("close", (code) => {
      streams.stdin.unpipe(child.stdin);
      session.finish();
      resolve(code ?? 1);
    });
  });
}
