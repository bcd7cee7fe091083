import { chmod, mkdir, rm, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import { BerthError } from "@berth/core";
import { ADMIN, type Principal } from "../api-tokens.js";
import { commands, findCommand } from "../commands/definitions.js";
import { executeCommand, exitCodeFor } from "../commands/execute.js";
import { formatHelp } from "../commands/parse.js";
import type { DaemonServices } from "../services.js";

/**
 * The daemon's HTTP+JSON API.
 *
 *   GET  /v1/health               → {"ok":true}
 *   GET  /v1/commands             → every command's name, usage, summary, example and scope
 *   POST /v1/commands/<name>      body {"args":[…],"flags":{…}} (or ?input=<json> with a tar body for uploads)
 *
 * Command responses are newline-delimited JSON: `{"type":"output","text":…}` lines as work happens, then one
 * `{"type":"result",…}` or `{"type":"error","code":…,"message":…}` line. Failures found before any output get
 * the matching HTTP status (400, 401, 403, 404, 409); later ones arrive in the final line of a 200 stream.
 */
export interface ApiServerOptions {
  services: DaemonServices;
  /** Principal of a connection; undefined answers 401. */
  authenticate(request: IncomingMessage): Promise<Principal | undefined>;
}

const MAX_JSON_BODY = 4 * 1024 * 1024;

function statusFor(exitCode: number, code: string): number {
  if (code === "UNAUTHORIZED") return 401;
  if (code === "FORBIDDEN") return 403;
  if (code === "COMMAND_NOT_FOUND") return 404;
  return { 2: 400, 3: 404, 4: 403, 5: 409 }[exitCode] ?? 500;
}

export function createApiServer(options: ApiServerOptions): Server {
  return createServer((request, response) => {
    handle(options, request, response).catch((error) => {
      if (!response.headersSent) response.writeHead(500, { "content-type": "application/x-ndjson" });
      response.end(`${JSON.stringify({ type: "error", code: "INTERNAL", message: String(error) })}\n`);
    });
  });
}

async function handle(options: ApiServerOptions, request: IncomingMessage, response: ServerResponse) {
  const url = new URL(request.url ?? "/", "http://berth");
  if (request.method === "GET" && url.pathname === "/v1/health") {
    return sendJson(response, 200, { ok: true });
  }
  const principal = await options.authenticate(request);
  if (!principal) {
    request.resume();
    return sendError(
      response,
      401,
      "UNAUTHORIZED",
      "Missing or unknown API token: send Authorization: Bearer <token> (tokens:create makes one).",
    );
  }
  if (request.method === "GET" && url.pathname === "/v1/commands") {
    return sendJson(
      response,
      200,
      commands.map((command) => ({
        name: command.name,
        usage: command.usage,
        summary: command.summary,
        example: command.example,
        scope: command.scope,
        read: command.read === true,
        help: formatHelp(command),
      })),
    );
  }
  const match = /^\/v1\/commands\/([a-z][a-z0-9:-]{0,40})$/.exec(url.pathname);
  if (request.method !== "POST" || !match) {
    request.resume();
    return sendError(
      response,
      404,
      "NOT_FOUND",
      `No endpoint ${request.method} ${url.pathname.slice(0, 80)}.`,
    );
  }
  const name = match[1] as string;
  const command = findCommand(name);
  let input: unknown;
  let upload: NodeJS.ReadableStream | undefined;
  try {
    if (command?.uploadFlag && url.searchParams.has("input")) {
      input = JSON.parse(url.searchParams.get("input") as string);
      upload = request;
    } else {
      input = JSON.parse((await readBody(request)) || "{}");
    }
  } catch (error) {
    return sendError(
      response,
      400,
      "USAGE",
      `The request body is not valid JSON: ${(error as Error).message}`,
    );
  }

  // Abort streams (logs -t, run) when the caller leaves; deploys and other detached work run to the end.
  const controller = new AbortController();
  response.on("close", () => {
    if (!response.writableFinished && !command?.detached)
      controller.abort(new BerthError("ABORTED", "The caller disconnected."));
  });

  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    response.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  };
  const result = await executeCommand({
    services: options.services,
    principal,
    name,
    input,
    signal: controller.signal,
    ...(upload ? { upload } : {}),
    sink: {
      output(text) {
        start();
        response.write(`${JSON.stringify({ type: "output", text })}\n`);
      },
    },
  });
  if (upload && !request.readableEnded) request.resume();
  if (result.ok) {
    start();
    response.end(`${JSON.stringify({ type: "result", data: result.data, exitCode: result.exitCode })}\n`);
    return;
  }
  const error = result.error ?? { code: "INTERNAL", message: "Unknown failure." };
  const line = `${JSON.stringify({ type: "error", ...error, exitCode: result.exitCode })}\n`;
  if (!started) {
    response.writeHead(statusFor(result.exitCode, error.code), { "content-type": "application/x-ndjson" });
  }
  response.end(line);
}

function sendJson(response: ServerResponse, status: number, body: unknown) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

function sendError(response: ServerResponse, status: number, code: string, message: string) {
  response.writeHead(status, { "content-type": "application/x-ndjson" });
  response.end(`${JSON.stringify({ type: "error", code, message, exitCode: exitCodeFor(code) })}\n`);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_BODY) throw new Error(`body larger than ${MAX_JSON_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Listens on a unix socket with mode 0660 (the socket's group may use Berth, like Docker's). A socket
 * file left by a crashed daemon is replaced; one that answers means another daemon runs, which is refused.
 */
export async function listenOnSocket(server: Server, path: string): Promise<void> {
  if (await exists(path)) {
    if (await answers(path)) {
      throw new BerthError("DAEMON_RUNNING", `Another berth daemon answers on ${path}; stop it first.`);
    }
    await rm(path, { force: true });
  }
  await mkdir(dirname(path), { recursive: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(path, 0o660);
}

export async function listenOnPort(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === "object" && address ? address.port : port;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export const SOCKET_PRINCIPAL: Principal = ADMIN;
