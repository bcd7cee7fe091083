/**
 * Heroku-style progress output, streamed as it happens:
 *
 *     -----> Building hello from Dockerfile
 *            Step 1/3 : FROM berth/busybox
 *
 * Over `git push` the git package prefixes each line with `remote: `; embedders pass any sink.
 */
export type OutputSink = (text: string) => void;

const STEP = "-----> ";
const DETAIL = "       ";
const WARNING = " !     ";

export class Output {
  readonly #sink: OutputSink;
  #partial = "";

  constructor(sink: OutputSink = () => {}) {
    this.#sink = sink;
  }

  /** A heading: `-----> Building`. */
  step(title: string): void {
    this.#lines(title, STEP);
  }

  /** Indented detail under the current step; multi-line text is split and each line indented. */
  detail(text: string): void {
    this.#lines(text, DETAIL);
  }

  warn(text: string): void {
    this.#lines(text, WARNING);
  }

  /**
   * Streamed child-process output of unknown chunking: complete lines are indented and written at once,
   * a trailing partial line waits for its end (or for `flush`).
   */
  stream(chunk: string): void {
    const text = this.#partial + chunk;
    const end = text.lastIndexOf("\n");
    if (end === -1) {
      this.#partial = text;
      return;
    }
    this.#partial = text.slice(end + 1);
    this.#lines(text.slice(0, end), DETAIL);
  }

  flush(): void {
    if (this.#partial) {
      const rest = this.#partial;
      this.#partial = "";
      this.#lines(rest, DETAIL);
    }
  }

  #lines(text: string, prefix: string): void {
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    this.#sink(`${lines.map((line) => (line ? prefix + line : "")).join("\n")}\n`);
  }
}

/** An output that collects everything it is given, for tests and for error summaries. */
export function collectOutput(): { output: Output; text: () => string } {
  let collected = "";
  return {
    output: new Output((text) => {
      collected += text;
    }),
    text: () => collected,
  };
}
