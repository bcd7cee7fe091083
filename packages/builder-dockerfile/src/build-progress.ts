import type { Output } from "@berth/core";

/** One message of the engine's `/build` JSON stream (classic builder). */
export interface BuildMessage {
  stream?: string;
  status?: string;
  progress?: string;
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: { ID?: string };
}

const STEP_LINE = /^Step \d+\/\d+ : /;
const RUNNING_IN = /^ ---> Running in ([0-9a-f]{12,64})$/;
const IMAGE_LINE = /^ ---> ([0-9a-f]{12,64})$/;
const BUILT_LINE = /^Successfully built ([0-9a-f]{12,64})$/;
const REMOVING_CONTAINER = /^Removing intermediate container ([0-9a-f]{12,64})$/;

/**
 * Follows one classic build as its JSON messages arrive: writes every engine line to the output as it
 * comes, and keeps what the builder needs afterwards — the step that failed, the images this build
 * committed (to remove after a failure), and the id of the final image.
 */
export class BuildProgress {
  readonly #output: Output;
  #messageBuffer = "";
  #lineBuffer = "";
  #stepRan = false;
  /** The step running now, `Step 2/3 : RUN make`. */
  currentStep: string | undefined;
  /** The image id the engine reported for the finished build. */
  imageId: string | undefined;
  /** The engine's error, when the build failed. */
  error: string | undefined;
  /** True once any step was answered from the layer cache. */
  usedCache = false;
  /** The intermediate container of the running step, until the engine says it removed it. */
  runningContainer: string | undefined;
  /** Images committed by this build's steps (not cache hits), oldest first. */
  readonly createdImages: string[] = [];

  constructor(output: Output) {
    this.#output = output;
  }

  /** A chunk of the raw response body: newline-separated JSON objects, split anywhere. */
  write(chunk: Buffer | string): void {
    const text = this.#messageBuffer + chunk.toString();
    const lines = text.split("\n");
    this.#messageBuffer = lines.pop() ?? "";
    for (const line of lines) this.#message(line);
  }

  end(): void {
    if (this.#messageBuffer.trim()) this.#message(this.#messageBuffer);
    this.#messageBuffer = "";
    if (this.#lineBuffer) this.#line(this.#lineBuffer);
    this.#lineBuffer = "";
    this.#output.flush();
  }

  #message(raw: string): void {
    const trimmed = raw.trim();
    if (!trimmed) return;
    let message: BuildMessage;
    try {
      message = JSON.parse(trimmed) as BuildMessage;
    } catch {
      // Not JSON (an engine that answered in text): still show it rather than lose it.
      message = { stream: `${trimmed}\n` };
    }
    if (message.aux?.ID) this.imageId = message.aux.ID;
    if (message.stream !== undefined) this.#stream(message.stream);
    if (message.status !== undefined)
      this.#stream(`${message.status}${message.progress ? ` ${message.progress}` : ""}\n`);
    if (message.error !== undefined || message.errorDetail?.message !== undefined) {
      this.error = (message.errorDetail?.message ?? message.error ?? "").trim() || "unknown build error";
      this.#output.flush();
      this.#output.warn(this.error);
    }
  }

  #stream(text: string): void {
    this.#output.stream(text);
    const lines = (this.#lineBuffer + text).split("\n");
    this.#lineBuffer = lines.pop() ?? "";
    for (const line of lines) this.#line(line.replace(/\r$/, ""));
  }

  #line(line: string): void {
    if (STEP_LINE.test(line)) {
      this.currentStep = line.trim();
      this.#stepRan = false;
      return;
    }
    if (line.trim() === "---> Using cache") {
      this.usedCache = true;
      return;
    }
    const running = RUNNING_IN.exec(line)?.[1];
    if (running) {
      this.#stepRan = true;
      this.runningContainer = running;
      return;
    }
    const removed = REMOVING_CONTAINER.exec(line)?.[1];
    if (removed) {
      if (removed === this.runningContainer) this.runningContainer = undefined;
      return;
    }
    const image = IMAGE_LINE.exec(line)?.[1];
    if (image) {
      // A step that ran committed this image; after FROM or a cache hit it existed before the build.
      if (this.#stepRan && !this.createdImages.includes(image)) this.createdImages.push(image);
      this.#stepRan = false;
      return;
    }
    const built = BUILT_LINE.exec(line)?.[1];
    if (built && !this.imageId) this.imageId = built;
  }
}
