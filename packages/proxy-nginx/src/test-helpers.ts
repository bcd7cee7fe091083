import { readdir, readFile, stat } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";

/** Test support (not exported by the package). */

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** GET (or another method) through nginx on 127.0.0.1 with a Host header; a fresh connection every time. */
export function send(
  port: number,
  host: string,
  options: { path?: string; method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: options.path ?? "/",
        method: options.method ?? "GET",
        agent: false,
        headers: { Host: host, ...options.headers },
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body, headers: response.headers }),
        );
      },
    );
    outgoing.on("error", reject);
    outgoing.end(options.body);
  });
}

/** HTTPS through nginx on 127.0.0.1 with SNI and Host set to `host`; the self-signed certificate is accepted. */
export function sendTls(
  port: number,
  host: string,
  path = "/",
): Promise<Answer & { certificateSubject: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        servername: host,
        rejectUnauthorized: false,
        agent: false,
        headers: { Host: host },
      },
      (response) => {
        let body = "";
        const certificate = (response.socket as import("node:tls").TLSSocket).getPeerCertificate();
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            body,
            headers: response.headers,
            certificateSubject: String(certificate?.subject?.CN ?? ""),
          }),
        );
      },
    );
    outgoing.on("error", reject);
    outgoing.end();
  });
}

/**
 * Every config and state file under the proxy's directory (following the `live` symlink) with its content, for
 * before/after comparisons; logs, pid file, control socket and nginx's temp files are left out.
 */
export async function snapshot(directory: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (dir: string, relative: string) => {
    for (const entry of await readdir(dir)) {
      if (relative === "" && ["logs", "run", "temp"].includes(entry)) continue;
      const path = join(dir, entry);
      const info = await stat(path);
      if (info.isDirectory()) await walk(path, `${relative}${entry}/`);
      else if (info.isFile()) files[`${relative}${entry}`] = await readFile(path, "utf8");
    }
  };
  await walk(directory, "");
  return files;
}
