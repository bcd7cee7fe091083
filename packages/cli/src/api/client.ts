import { request as httpRequest, type IncomingMessage } from "node:http";
import { BerthError } from "@berth/core";
import type { CommandInput } from "../commands/types.js";

export interface ClientOptions {
  /** Unix socket of the daemon (default transport). */
  socket?: string;
  /** `http://127.0.0.1:PORT` of the TCP API; needs a token. */
  url?: string;
  token?: string;
}

export interface CommandCallOptions {
  /** Text the daemon streams while it works. */
  onOutput?: (text: string) => void;
  /** A directory to send as a tar body (deploy --from-dir). */
  uploadDir?: string;
  signal?: AbortSignal;
}

export interface CommandResponse {
  data: unknown;
  exitCode: number;
}

/** A client of the daemon's API: one method per command, failures as BerthErrors with the daemon's code. */
export class BerthClient {
  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    if (!options.socket && !options.url)
      throw new BerthError("USAGE", "Give the daemon's socket or API URL.");
    this.#options = options;
  }

  /** Runs one command; resolves with the result, rejects with the daemon's error. */
  async command(
    name: string,
    input: CommandInput,
    options: CommandCallOptions = {},
  ): Promise<CommandResponse> {
    const path = `/v1/commands/${encodeURIComponent(name).replaceAll("%3A", ":")}`;
    const response = options.uploadDir
      ? await this.#send(
          "POST",
          `${path}?input=${encodeURIComponent(JSON.stringify(input))}`,
          undefined,
          options,
        )
      : await this.#send("POST", path, JSON.stringify(input), options);
    return readStream(response, options.onOutput);
  }

  async health(): Promise<boolean> {
    try {
      const response = await this.#send("GET", "/v1/health", undefined, {});
      response.resume();
      return response.statusCode === 200;
    } catch {
      return false;
    }
  }

  async #send(
    method: string,
    path: string,
    body: string | undefined,
    options: CommandCallOptions,
  ): Promise<IncomingMessage> {
    const { socket, url, token } = this.#options;
    // Only uploads need tar; every other command starts without loading it.
    const pack = options.uploadDir ? (await import("tar-fs")).pack : undefined;
    const target = url ? new URL(path, url) : undefined;
    return new Promise((resolve, reject) => {
      const outgoing = httpRequest(
        {
          method,
          ...(target
            ? { hostname: target.hostname, port: target.port, path: target.pathname + target.search }
            : { socketPath: socket, path }),
          headers: {
            ...(body === undefined ? {} : { "content-type": "application/json" }),
            ...(options.uploadDir ? { "content-type": "application/x-tar" } : {}),
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          ...(options.signal ? { signal: options.signal } : {}),
        },
        resolve,
      );
      outgoing.on("error", (error: NodeJS.ErrnoException) => {
        if (error.name === "AbortError") return reject(error);
        const where = url ?? socket;
        reject(
          new BerthError(
            "DAEMON_UNAVAILABLE",
            `The berth daemon does not answer on ${where} (${error.code ?? error.message}). Start it with: berth daemon (or npm run demo), or point BERTH_SOCKET / BERTH_API_URL at it.`,
            { cause: error },
          ),
        );
      });
      if (options.uploadDir && pack) {
        const tar = pack(options.uploadDir, {
          ignore: (name: string) =>
            /(^|\/)(\.git|node_modules)(\/|$)/.test(name.slice(options.uploadDir!.length)),
        });
        tar.on("error", (error: Error) => outgoing.destroy(error));
        tar.pipe(outgoing);
      } else {
        outgoing.end(body);
      }
    });
  }
}

async function readStream(
  response: IncomingMessage,
  onOutput?: (text: string) => void,
): Promise<CommandResponse> {
  response.setEncoding("utf8");
  let buffered = "";
  let final: Record<string, unknown> | undefined;
  const handle = (line: string) => {
    if (!line) return;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new BerthError("PROTOCOL", `The daemon sent something that is not JSON: ${line.slice(0, 80)}`);
    }
    if (message.type === "output") onOutput?.(String(message.text));
    else final = message;
  };
  for await (const chunk of response) {
    buffered += chunk as string;
    let end = buffered.indexOf("\n");
    while (end !== -1) {
      handle(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      end = buffered.indexOf("\n");
    }
  }
  handle(buffered);
  if (!final) {
    throw new BerthError(
      "DAEMON_UNAVAILABLE",
      "The daemon closed the connection before answering (did it stop?).",
    );
  }
  if (final.type === "error") {
    throw new BerthError(String(final.code), String(final.message), {
      details: (final.details as Record<string, unknown> | undefined) ?? {},
    });
  }
  return { data: final.data, exitCode: Number(final.exitCode ?? 0) };
}
