import { StringDecoder } from "node:string_decoder";

export type StreamName = "stdout" | "stderr";

/**
 * Splits Docker's multiplexed stream (containers without a TTY): every frame is an 8-byte header — the stream
 * (1 stdout, 2 stderr), three zero bytes, the payload size as a big-endian uint32 — followed by the payload.
 * Frames arrive cut anywhere, so partial headers and payloads wait for the next chunk.
 */
export class DockerStreamDemuxer {
  readonly #onFrame: (stream: StreamName, payload: Buffer) => void;
  #pending: Buffer = Buffer.alloc(0);

  constructor(onFrame: (stream: StreamName, payload: Buffer) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 8) {
      const size = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + size) break;
      const stream: StreamName = this.#pending[0] === 2 ? "stderr" : "stdout";
      const payload = this.#pending.subarray(8, 8 + size);
      this.#pending = this.#pending.subarray(8 + size);
      this.#onFrame(stream, payload);
    }
  }
}

/** Turns byte chunks into complete UTF-8 lines; a trailing partial line waits for its end or `flush`. */
export class LineSplitter {
  readonly #decoder = new StringDecoder("utf8");
  readonly #onLine: (line: string) => void;
  #partial = "";

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  push(chunk: Buffer): void {
    const text = this.#partial + this.#decoder.write(chunk);
    const lines = text.split("\n");
    this.#partial = lines.pop() ?? "";
    for (const line of lines) this.#onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  }

  flush(): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = "";
    if (rest) this.#onLine(rest);
  }
}

/** Docker's `timestamps` prefix: `2026-01-02T03:04:05.123456789Z message`. */
export function splitTimestamp(line: string): { time: string | undefined; line: string } {
  const space = line.indexOf(" ");
  const candidate = space === -1 ? line : line.slice(0, space);
  if (/^\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})$/.test(candidate)) {
    return { time: candidate, line: space === -1 ? "" : line.slice(space + 1) };
  }
  return { time: undefined, line };
}

/** Resolves when a readable stream ended or closed (or errored), at the latest after `timeoutMs`. */
export function streamFinished(stream: NodeJS.ReadableStream, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      stream.removeListener("end", done);
      stream.removeListener("close", done);
      stream.removeListener("error", done);
      resolve();
    }
    stream.once("end", done);
    stream.once("close", done);
    stream.once("error", done);
  });
}
