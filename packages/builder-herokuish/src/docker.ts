import { Writable } from "node:stream";
import type Docker from "dockerode";

/** Thin helpers over dockerode for the build container: exec with streamed output, and archives in and out. */

export interface ExecOptions {
  env?: string[];
  workingDir?: string;
  /** Every chunk as it arrives. */
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** Keep stdout in the result (detect names, release YAML). */
  captureStdout?: boolean;
  captureStderr?: boolean;
}

export interface ExecOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function execIn(
  container: Docker.Container,
  command: string[],
  options: ExecOptions = {},
): Promise<ExecOutcome> {
  const exec = await container.exec({
    Cmd: command,
    AttachStdout: true,
    AttachStderr: true,
    ...(options.env ? { Env: options.env } : {}),
    ...(options.workingDir ? { WorkingDir: options.workingDir } : {}),
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  let stdout = "";
  let stderr = "";
  const sink = (onChunk: ((chunk: string) => void) | undefined, keep: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const text = chunk.toString("utf8");
        keep(text);
        onChunk?.(text);
        callback();
      },
    });
  const outSink = sink(options.onStdout, (text) => {
    if (options.captureStdout) stdout += text;
  });
  const errSink = sink(options.onStderr, (text) => {
    if (options.captureStderr) stderr += text;
  });
  await new Promise<void>((resolve, reject) => {
    container.modem.demuxStream(stream, outSink, errSink);
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", reject);
  });
  // The stream can end a moment before the engine records the exit code.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode, stdout, stderr };
    if (Date.now() > deadline) throw new Error(`exec ${command.join(" ")} did not report an exit code`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Sends a tar stream into the container, extracted at `path` (which must exist). */
export async function putArchive(
  container: Docker.Container,
  archive: NodeJS.ReadableStream | Buffer,
  path = "/",
): Promise<void> {
  await container.putArchive(archive as NodeJS.ReadableStream, { path });
}

/** A tar stream of `path` inside the container (its last component is the top entry). */
export async function getArchive(container: Docker.Container, path: string): Promise<NodeJS.ReadableStream> {
  return (await container.getArchive({ path })) as NodeJS.ReadableStream;
}

export function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404;
}

export async function removeContainer(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
    return;
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404) return;
    // 409: a removal is already in progress (a cancelled build): wait until it is done, so callers see it gone.
    if (status !== 409) throw error;
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const gone = await container.inspect().then(
      () => false,
      (error: { statusCode?: number }) => error.statusCode === 404,
    );
    if (gone) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`container ${container.id} was not removed within 30 s`);
}
