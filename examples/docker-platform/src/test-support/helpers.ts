import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Platform, Source } from "@berth/core";
import Docker from "dockerode";

const sampleApp = fileURLToPath(new URL("../../sample-app", import.meta.url));

/** A copy of the sample app with `body.txt` set, plus (or overridden by) `files`. */
export async function sampleSource(body: string, files: Record<string, string> = {}): Promise<Source> {
  const dir = await mkdtemp(join(tmpdir(), "berth-docker-platform-"));
  await cp(sampleApp, dir, { recursive: true });
  await writeFile(join(dir, "body.txt"), body);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return { kind: "dir", dir };
}

export async function deploySample(
  platform: Platform,
  app: string,
  body: string,
  files: Record<string, string> = {},
  prepare?: (dir: string) => Promise<void>,
) {
  const source = await sampleSource(body, files);
  try {
    await prepare?.(source.dir);
    return await platform.deploy(app, source);
  } finally {
    await rm(source.dir, { recursive: true, force: true });
  }
}

export async function get(endpoint: { host: string; port: number } | undefined) {
  if (!endpoint) throw new Error("no endpoint");
  const response = await fetch(`http://${endpoint.host}:${endpoint.port}/`, {
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, body: await response.text() };
}

/** Retries `attempt` (a throw or `undefined` means not yet) at growing intervals until the deadline. */
export async function poll<T>(
  what: string,
  attempt: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? ` (${String(last)})` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** The web endpoints the scheduler reports now. */
export async function webEndpoints(platform: Platform, app: string) {
  return (await platform.ps.status(app)).flatMap((instance) =>
    instance.processType === "web" && instance.running && instance.endpoint ? [instance.endpoint] : [],
  );
}

export async function containersOf(docker: Docker, labels: string[]) {
  return docker.listContainers({ all: true, filters: { label: labels } });
}

export async function imagesOf(docker: Docker, labels: string[]) {
  return docker.listImages({ filters: { label: labels } });
}

export { Docker };
