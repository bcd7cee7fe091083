import { appendFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type CronSchedule, cronEntryId, cronMatches, nextCronTime, parseCronSchedule } from "./cron.js";
import { BerthError, describeError } from "./errors.js";
import type { Platform } from "./platform.js";
import type { LogLine } from "./plugin.js";

/** Time, and timers, as the cron runner sees them; tests pass a clock they move by hand. */
export interface CronClock {
  now(): Date;
  /** Calls `callback` after `milliseconds`; returns a function that cancels it. */
  setTimer(callback: () => void, milliseconds: number): () => void;
}

export const systemClock: CronClock = {
  now: () => new Date(),
  setTimer: (callback, milliseconds) => {
    const timer = setTimeout(callback, milliseconds);
    timer.unref?.();
    return () => clearTimeout(timer);
  },
};

export interface CronJob {
  id: string;
  app: string;
  schedule: string;
  command: string;
  /** Next start in the daemon's time zone, ISO 8601. */
  next: string | undefined;
  running: boolean;
  last?: { startedAt: string; exitCode: number };
}

interface Entry {
  id: string;
  schedule: CronSchedule;
  command: string;
}

/**
 * app.json `cron` entries of each app's current release, run as one-off instances of that release at their
 * schedule. One entry never overlaps itself: a start that finds the previous run still going is skipped.
 * Output goes to `<data>/apps/<app>/cron.log`, which `platform.logs` includes as `cron.<id>` lines.
 */
export class CronJobs {
  readonly #platform: Platform;
  readonly #running = new Map<string, Promise<number>>();
  readonly #last = new Map<string, { startedAt: string; exitCode: number }>();
  #clock: CronClock = systemClock;
  #cancel: (() => void) | undefined;
  #tickInFlight: Promise<void> = Promise.resolve();

  constructor(platform: Platform) {
    this.#platform = platform;
  }

  async #entries(app: string): Promise<Entry[]> {
    const state = await this.#platform.store.readState(app);
    if (!state.currentRelease || state.stopped) return [];
    const release = await this.#platform.store.readRelease(app, Number(state.currentRelease.slice(1)));
    return (release?.appJson.cron ?? []).map((entry) => ({
      id: cronEntryId(entry.schedule, entry.command),
      schedule: parseCronSchedule(entry.schedule),
      command: entry.command,
    }));
  }

  async list(app: string): Promise<CronJob[]> {
    await this.#platform.apps.get(app);
    const now = this.#clock.now();
    return (await this.#entries(app)).map((entry) => {
      const key = `${app}/${entry.id}`;
      const last = this.#last.get(key);
      return {
        id: entry.id,
        app,
        schedule: entry.schedule.source,
        command: entry.command,
        next: nextCronTime(entry.schedule, now)?.toISOString(),
        running: this.#running.has(key),
        ...(last ? { last } : {}),
      };
    });
  }

  /** Run an entry now; refused while the same entry is still running. Resolves with its exit code. */
  async run(app: string, id: string, onOutput?: (chunk: string) => void): Promise<number> {
    const entry = (await this.#entries(app)).find((candidate) => candidate.id === id);
    if (!entry)
      throw new BerthError(
        "CRON_NOT_FOUND",
        `App ${app} has no cron entry ${JSON.stringify(id)}; see cron:list ${app}.`,
      );
    const started = this.#start(app, entry, onOutput);
    if (!started)
      throw new BerthError(
        "CRON_BUSY",
        `Cron entry ${id} of ${app} is still running; try again when it ends.`,
      );
    return started;
  }

  /** Start every entry whose schedule matches `time` (a minute boundary). */
  async tick(time: Date): Promise<void> {
    for (const app of await this.#platform.store.listApps()) {
      let entries: Entry[];
      try {
        entries = await this.#entries(app);
      } catch {
        continue;
      }
      for (const entry of entries) {
        if (!cronMatches(entry.schedule, time)) continue;
        if (!this.#start(app, entry)) {
          this.#platform.events.emit("cron.skipped", app, {
            id: entry.id,
            reason: "previous run still going",
          });
        }
      }
    }
  }

  /** Tick at every minute boundary until `stop`. */
  start(clock: CronClock = systemClock): void {
    this.stop();
    this.#clock = clock;
    const schedule = () => {
      const now = clock.now();
      const next = new Date(now.getTime());
      next.setSeconds(0, 0);
      next.setMinutes(next.getMinutes() + 1);
      this.#cancel = clock.setTimer(() => {
        this.#tickInFlight = this.tick(next).finally(schedule);
      }, next.getTime() - now.getTime());
    };
    schedule();
  }

  stop(): void {
    this.#cancel?.();
    this.#cancel = undefined;
  }

  /** Resolves when the timer's current tick has started every entry it was due to start. */
  async ticked(): Promise<void> {
    await this.#tickInFlight;
  }

  /** Resolves when every run started so far has ended. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#running.values()]);
  }

  #start(app: string, entry: Entry, onOutput?: (chunk: string) => void): Promise<number> | undefined {
    const key = `${app}/${entry.id}`;
    if (this.#running.has(key)) return undefined;
    const startedAt = this.#clock.now().toISOString();
    const run = this.#execute(app, entry, onOutput)
      .then((exitCode) => {
        this.#last.set(key, { startedAt, exitCode });
        return exitCode;
      })
      .finally(() => this.#running.delete(key));
    this.#running.set(key, run);
    return run;
  }

  async #execute(app: string, entry: Entry, onOutput?: (chunk: string) => void): Promise<number> {
    const platform = this.#platform;
    const logPath = join(platform.dataDir, "apps", app, "cron.log");
    await mkdir(join(platform.dataDir, "apps", app), { recursive: true });
    let partial = "";
    let writing = Promise.resolve();
    const log = (line: string) => {
      const record = `${JSON.stringify({ time: new Date().toISOString(), source: `cron.${entry.id}`, line })}\n`;
      writing = writing.then(() => appendFile(logPath, record)).catch(() => {});
    };
    platform.events.emit("cron.started", app, { id: entry.id, command: entry.command });
    let exitCode: number;
    try {
      const settings = await platform.apps.get(app);
      const current = await platform.releases.current(app);
      if (!current) throw new BerthError("APP_NOT_DEPLOYED", `App ${app} is not deployed.`);
      const result = await platform.schedulerFor(settings).run(app, current, entry.command, {
        onOutput: (chunk) => {
          onOutput?.(chunk);
          const lines = (partial + chunk).split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) log(line);
        },
      });
      exitCode = result.exitCode;
    } catch (error) {
      log(`cron run failed: ${describeError(error)}`);
      exitCode = -1;
    }
    if (partial) log(partial);
    await writing;
    platform.events.emit("cron.finished", app, { id: entry.id, exitCode });
    return exitCode;
  }

  /** Past cron output lines of an app, oldest first. */
  async logLines(app: string, tail?: number): Promise<LogLine[]> {
    let text: string;
    try {
      text = await readFile(join(this.#platform.dataDir, "apps", app, "cron.log"), "utf8");
    } catch {
      return [];
    }
    const lines = text
      .split("\n")
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      });
    return tail === undefined ? lines : lines.slice(-tail);
  }
}
