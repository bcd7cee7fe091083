import { Agent, request } from "node:http";

/**
 * A small keep-alive HTTP load loop on node:http: `connections` workers share one Agent with that many
 * sockets, each sending GET requests back to back, until `stop()` is called and at least `minimumRequests` were
 * answered, or the deadline passes.
 *
 * No request is ever retried: every failure counts, including a reset on a reused keep-alive connection (what an
 * nginx reload does to idle client connections; Berth's deploys never reload the client-facing nginx).
 */
export interface LoadOptions {
  port: number;
  host: string;
  connections: number;
  minimumRequests: number;
  deadlineMs: number;
  /** Judges a body; false counts the response as wrong. */
  accept: (status: number, body: string, startedAt: number) => boolean;
}

export interface LoadResult {
  requests: number;
  errors: number;
  wrong: number;
  /** Failures on a reused keep-alive connection before any response byte (the reload race). */
  resetsOnReusedConnections: number;
  latenciesMs: number[];
  samples: string[];
  durationMs: number;
}

export interface LoadRun {
  stop(): void;
  done: Promise<LoadResult>;
}

interface Attempt {
  status: number;
  body: string;
}

type AttemptFailure = Error & { code?: string; reusedSocket?: boolean; responded?: boolean };

function getOnce(agent: Agent, options: LoadOptions): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const outgoing = request(
      { host: "127.0.0.1", port: options.port, path: "/", agent, headers: { Host: options.host } },
      (response) => {
        responded = true;
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        response.on("error", (error: AttemptFailure) => {
          error.responded = true;
          reject(error);
        });
      },
    );
    outgoing.on("error", (error: AttemptFailure) => {
      error.reusedSocket = outgoing.reusedSocket;
      error.responded = responded;
      reject(error);
    });
    outgoing.end();
  });
}

export function startLoad(options: LoadOptions): LoadRun {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const result: LoadResult = {
    requests: 0,
    errors: 0,
    wrong: 0,
    resetsOnReusedConnections: 0,
    latenciesMs: [],
    samples: [],
    durationMs: 0,
  };
  const started = performance.now();
  const deadline = Date.now() + options.deadlineMs;
  let stopped = false;
  const sample = (text: string) => {
    if (result.samples.length < 10) result.samples.push(text);
  };

  const worker = async () => {
    while (Date.now() < deadline && !(stopped && result.requests >= options.minimumRequests)) {
      const begin = performance.now();
      const startedAt = Date.now();
      let answer: Attempt | undefined;
      try {
        answer = await getOnce(agent, options);
      } catch (error) {
        const failure = error as AttemptFailure;
        if (failure.reusedSocket && !failure.responded) result.resetsOnReusedConnections += 1;
        sample(`${failure.code ?? ""} ${failure.message}`);
      }
      result.requests += 1;
      result.latenciesMs.push(performance.now() - begin);
      if (!answer) {
        result.errors += 1;
      } else if (!options.accept(answer.status, answer.body, startedAt)) {
        result.wrong += 1;
        sample(`${answer.status} ${JSON.stringify(answer.body.slice(0, 80))}`);
      }
    }
  };

  const done = Promise.all(Array.from({ length: options.connections }, worker)).then(() => {
    agent.destroy();
    result.durationMs = performance.now() - started;
    return result;
  });
  return {
    stop: () => {
      stopped = true;
    },
    done,
  };
}

export function percentile(values: number[], fraction: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}
