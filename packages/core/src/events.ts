import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";

/** One audit entry: every pipeline step and every mutation emits one. */
export interface BerthEvent {
  time: string;
  type: string;
  app?: string;
  data?: Record<string, unknown>;
}

export type EventListener = (event: BerthEvent) => void;

/**
 * The append-only event log (`<data>/events.jsonl`) plus in-process subscription. Appends are serialized so
 * lines never interleave; listeners are called synchronously and a throwing listener cannot break a deploy.
 */
export class EventLog {
  readonly #path: string | undefined;
  readonly #listeners = new Set<EventListener>();
  #writing: Promise<void> = Promise.resolve();

  constructor(path?: string) {
    this.#path = path;
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(type: string, app?: string, data?: Record<string, unknown>): BerthEvent {
    const event: BerthEvent = {
      time: new Date().toISOString(),
      type,
      ...(app ? { app } : {}),
      ...(data ? { data } : {}),
    };
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A subscriber's bug must not abort the operation that emitted the event.
      }
    }
    const path = this.#path;
    if (path) {
      const line = `${JSON.stringify(event)}\n`;
      this.#writing = this.#writing
        .then(async () => {
          await mkdir(dirname(path), { recursive: true });
          await appendFile(path, line);
        })
        .catch(() => {});
    }
    return event;
  }

  /** Resolves when every event emitted so far is on disk. */
  flushed(): Promise<void> {
    return this.#writing;
  }
}
