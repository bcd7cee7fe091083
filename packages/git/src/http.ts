import { spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { describeError, isBerthError, validateAppName } from "@berth/core";
import type { Identity, TokenStore } from "./access.js";
import type { GitService, GitSession, PushReceiver } from "./receiver.js";
import { gitEnvironment } from "./run-git.js";

export interface HttpHandlerOptions {
  /** Path prefix the handler is mounted under, e.g. `/git`; default none. */
  basePath?: string;
  /** The realm shown in `WWW-Authenticate`; default `Berth`. */
  realm?: string;
}

export type GitHttpHandler = (request: IncomingMessage, response: ServerResponse) => void;

type Route = { app: string; action: "info/refs" | GitService };

const ROUTE = /^\/([^/]*)\/(info\/refs|git-receive-pack|git-upload-pack)$/;

/** Matches the raw request path; nothing is decoded or normalised, so `%2e%2e` or `..` never becomes a path. */
function route(
  rawUrl: string,
  basePath: string,
): { segment: string; action: Route["action"]; query: string } | undefined {
  const queryStart = rawUrl.indexOf("?");
  const path = queryStart === -1 ? rawUrl : rawUrl.slice(0, queryStart);
  const query = queryStart === -1 ? "" : rawUrl.slice(queryStart + 1);
  if (basePath && !path.startsWith(`${basePath}/`)) return undefined;
  const match = ROUTE.exec(basePath ? path.slice(basePath.length) : path);
  if (!match) return undefined;
  const action = match[2] === "info/refs" ? "info/refs" : (match[2]?.slice(4) as GitService);
  return { segment: match[1] as string, action, query };
}

function credentials(request: IncomingMessage): { user: string; token: string } | undefined {
  const header = request.headers.authorization;
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), token: decoded.slice(colon + 1) };
}

function statusOf(error: unknown): number {
  if (isBerthError(error, "FORBIDDEN")) return 403;
  if (isBerthError(error, "APP_NOT_FOUND")) return 404;
  if (isBerthError(error, "INVALID_APP_NAME")) return 400;
  return 500;
}

function packetLine(text: string): string {
  return (text.length + 4).toString(16).padStart(4, "0") + text;
}

/**
 * The smart HTTP protocol (`info/refs`, `git-upload-pack`, `git-receive-pack`) as a request handler for any
 * Node `http` server. Tokens are checked first; bodies stream through git (gunzipped when the client
 * compressed them) and git's answer streams back, so pushes of any size use little memory.
 */
export function createHttpHandler(
  receiver: PushReceiver,
  tokens: TokenStore,
  options: HttpHandlerOptions = {},
): GitHttpHandler {
  const basePath = (options.basePath ?? "").replace(/\/+$/, "");
  const realm = (options.realm ?? "Berth").replace(/["\\]/g, "");
  const reply = (
    response: ServerResponse,
    status: number,
    text: string,
    headers: Record<string, string> = {},
  ) => {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    response.writeHead(status, {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-cache",
      ...headers,
    });
    response.end(`${text}\n`);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const matched = route(request.url ?? "/", basePath);
    if (!matched) return reply(response, 404, "Not found.");
    let service: GitService;
    if (matched.action === "info/refs") {
      if (request.method !== "GET" && request.method !== "HEAD")
        return reply(response, 405, "Use GET.", { allow: "GET" });
      const requested = new URLSearchParams(matched.query).get("service");
      if (requested !== "git-receive-pack" && requested !== "git-upload-pack") {
        return reply(
          response,
          403,
          "Only the smart HTTP protocol is served; use a git client of version 1.6.6 or later.",
        );
      }
      service = requested.slice(4) as GitService;
    } else {
      if (request.method !== "POST") return reply(response, 405, "Use POST.", { allow: "POST" });
      service = matched.action;
      if (request.headers["content-type"] !== `application/x-git-${service}-request`) {
        return reply(response, 415, `Expected a body of type application/x-git-${service}-request.`);
      }
    }
    const given = credentials(request);
    const identity: Identity | undefined = given ? await tokens.verify(given.user, given.token) : undefined;
    if (!identity) {
      return reply(
        response,
        401,
        given ? "Wrong user name or token." : "Authentication required: use http://USER:TOKEN@host/app.git.",
        {
          "www-authenticate": `Basic realm="${realm}", charset="UTF-8"`,
        },
      );
    }
    const segment = matched.segment.endsWith(".git") ? matched.segment.slice(0, -4) : matched.segment;
    let session: GitSession;
    try {
      session = await receiver.open(identity, validateAppName(segment), service);
    } catch (error) {
      return reply(response, statusOf(error), describeError(error));
    }
    if (matched.action === "info/refs") {
      advertise(session, response);
    } else {
      rpc(session, request, response);
    }
  };

  return (request, response) => {
    handle(request, response).catch((error: unknown) => reply(response, 500, describeError(error)));
  };
}

function advertise(session: GitSession, response: ServerResponse): void {
  const child = spawn("git", [session.service, "--stateless-rpc", "--advertise-refs", session.repoDir], {
    env: gitEnvironment(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let started = false;
  child.stdout.on("data", (chunk: Buffer) => {
    if (!started) {
      started = true;
      response.writeHead(200, {
        "content-type": `application/x-git-${session.service}-advertisement`,
        "cache-control": "no-cache",
      });
      response.write(`${packetLine(`# service=git-${session.service}\n`)}0000`);
    }
    response.write(chunk);
  });
  const errors: Buffer[] = [];
  child.stderr.on("data", (chunk: Buffer) => errors.push(chunk));
  response.on("close", () => {
    if (child.exitCode === null && !response.writableFinished) child.kill();
  });
  child.on("close", (code) => {
    session.finish();
    if (!started) {
      response.writeHead(code === 0 ? 200 : 500, { "content-type": "text/plain; charset=utf-8" });
      response.end(
        code === 0 ? "" : `git ${session.service} failed: ${Buffer.concat(errors).toString("utf8")}\n`,
      );
      return;
    }
    response.end();
  });
}

function rpc(session: GitSession, request: IncomingMessage, response: ServerResponse): void {
  const child = spawn("git", [session.service, "--stateless-rpc", session.repoDir], {
    env: gitEnvironment(session.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let body: Readable = request;
  if (request.headers["content-encoding"] === "gzip") {
    const gunzip = createGunzip();
    gunzip.on("error", () => child.kill());
    body = request.pipe(gunzip);
  }
  body.pipe(child.stdin);
  child.stdin.on("error", () => {
    // git stopped reading (bad request); its exit code decides.
  });
  response.writeHead(200, {
    "content-type": `application/x-git-${session.service}-result`,
    "cache-control": "no-cache",
  });
  child.stdout.pipe(response, { end: false });
  child.stderr.resume();
  response.on("close", () => {
    // A clone nobody reads is stopped; a push is left to finish, so its deploy and its ref update still agree.
    if (session.service === "upload-pack" && child.exitCode === null && !response.writableFinished)
      child.kill();
  });
  child.on("close", () => {
    session.finish();
    response.end();
  });
}
