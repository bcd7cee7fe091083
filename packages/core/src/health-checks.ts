import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { BerthError, describeError } from "./errors.js";
import type { AppSettings, HealthCheck, Instance } from "./model.js";
import type { CheckContext, Scheduler } from "./plugin.js";

export interface CheckDefaults {
  /** How long a process type without an HTTP port must stay up, in seconds. */
  uptime: number;
  /** How long a web instance has to answer its first HTTP request, in seconds. */
  webTimeout: number;
}

/** Process types whose checks the user turned off (`_all_` turns off every type). */
function listed(list: string[], type: string): boolean {
  return list.includes(type) || list.includes("_all_");
}

/**
 * Core's `checkDeploy` tap: app.json `healthchecks` (Dokku's format, `startup` checks) for each process type,
 * or the defaults: a web instance must answer HTTP, any other type must stay up for a short uptime. Every
 * instance is checked in parallel by polling at short, growing intervals against a deadline.
 */
export async function runHealthChecks(context: CheckContext, scheduler: Scheduler, defaults: CheckDefaults) {
  const { app, deployment, release, output } = context;
  const configured = release.appJson.healthchecks ?? {};
  const instances = deployment.instances;
  const types = [...new Set(instances.map((instance) => instance.processType))];
  for (const type of types) {
    if (listed(app.checks.disabled, type)) output.detail(`Checks disabled for ${type}`);
  }
  const results = await Promise.allSettled(
    instances
      .filter((instance) => !listed(app.checks.disabled, instance.processType))
      .map(async (instance) => {
        const skipped = listed(app.checks.skipped, instance.processType);
        const checks = skipped
          ? []
          : (configured[instance.processType] ?? []).filter((check) => check.type === "startup");
        if (checks.length === 0) {
          await defaultCheck(context, scheduler, instance, defaults);
        } else {
          for (const check of checks) await configuredCheck(context, scheduler, instance, check);
        }
        output.detail(`${instance.processType}.${instance.index} passed its checks`);
      }),
  );
  const failures = results.flatMap((result) => (result.status === "rejected" ? [result.reason] : []));
  if (failures.length > 0) {
    const messages = failures.map(describeError);
    throw new BerthError("CHECK_FAILED", `Health checks failed: ${messages.join("; ")}`, {
      details: { failures: messages, app: app.name, release: release.id },
      cause: failures[0],
    });
  }
}

async function defaultCheck(
  context: CheckContext,
  scheduler: Scheduler,
  instance: Instance,
  defaults: CheckDefaults,
) {
  const name = `${instance.processType}.${instance.index}`;
  if (instance.endpoint) {
    const deadline = Date.now() + defaults.webTimeout * 1000;
    await pollUntil(context, scheduler, instance, deadline, async () => {
      const response = await fetchInstance(
        context.app,
        instance,
        "/",
        "http",
        Math.min(5, defaults.webTimeout),
      );
      if (response.status >= 500) throw new Error(`${name}: GET / answered ${response.status}`);
    });
    return;
  }
  await holdUptime(context, scheduler, instance, defaults.uptime);
}

async function configuredCheck(
  context: CheckContext,
  scheduler: Scheduler,
  instance: Instance,
  check: HealthCheck,
) {
  const name = `${instance.processType}.${instance.index}`;
  const label = check.name ? `${name} check "${check.name}"` : name;
  if (check.initialDelay > 0) await abortableSleep(check.initialDelay * 1000, context.signal);
  const deadline = Date.now() + check.attempts * (check.timeout + check.wait) * 1000;
  if (check.command) {
    const command = check.command;
    await pollUntil(context, scheduler, instance, deadline, async () => {
      const result = await scheduler.exec(context.app.name, instance, command, {
        timeoutMs: check.timeout * 1000,
      });
      if (result.exitCode !== 0) {
        throw new Error(
          `${label}: command ${JSON.stringify(command)} exited ${result.exitCode}: ${result.output.trim().slice(-300)}`,
        );
      }
    });
  }
  if (check.path !== undefined || check.content !== undefined) {
    if (!instance.endpoint) throw new Error(`${label}: has an HTTP check but the process type has no port`);
    const path = check.path ?? "/";
    await pollUntil(context, scheduler, instance, deadline, async () => {
      const response = await fetchInstance(
        context.app,
        instance,
        path,
        check.scheme ?? "http",
        check.timeout,
      );
      if (response.status < 200 || response.status >= 400)
        throw new Error(`${label}: GET ${path} answered ${response.status}`);
      if (check.content !== undefined && !response.body.includes(check.content)) {
        throw new Error(
          `${label}: GET ${path} answered without the expected content ${JSON.stringify(check.content)}`,
        );
      }
    });
  }
  if (check.uptime !== undefined) await holdUptime(context, scheduler, instance, check.uptime);
}

/** Retries `attempt` at short, growing intervals until it passes or the deadline is reached; fails fast if the instance died. */
async function pollUntil(
  context: CheckContext,
  scheduler: Scheduler,
  instance: Instance,
  deadline: number,
  attempt: () => Promise<void>,
): Promise<void> {
  let delay = 20;
  let lastError: unknown;
  for (;;) {
    try {
      await attempt();
      return;
    } catch (error) {
      lastError = error;
    }
    const state = await scheduler.instanceState(context.app.name, instance);
    if (!state.running || state.restarts > 0) {
      throw new Error(
        `${instance.processType}.${instance.index} ${state.running ? `restarted ${state.restarts} time(s)` : `exited${state.exitCode === undefined ? "" : ` with code ${state.exitCode}`}`} before passing its check (${describeError(lastError)})`,
      );
    }
    if (Date.now() + delay > deadline) throw lastError;
    await abortableSleep(delay, context.signal);
    delay = Math.min(Math.round(delay * 1.5), 250);
  }
}

/** The instance must keep running, without restarts, until it has been up for `seconds`. */
async function holdUptime(context: CheckContext, scheduler: Scheduler, instance: Instance, seconds: number) {
  const name = `${instance.processType}.${instance.index}`;
  const until = Date.now() + seconds * 1000;
  let delay = 20;
  for (;;) {
    const state = await scheduler.instanceState(context.app.name, instance);
    if (!state.running) {
      throw new Error(
        `${name} exited${state.exitCode === undefined ? "" : ` with code ${state.exitCode}`} within ${seconds}s of starting`,
      );
    }
    if (state.restarts > 0)
      throw new Error(`${name} restarted ${state.restarts} time(s) within ${seconds}s of starting`);
    const remaining = until - Date.now();
    if (remaining <= 0) return;
    await abortableSleep(Math.min(delay, remaining), context.signal);
    delay = Math.min(Math.round(delay * 1.5), 250);
  }
}

export interface InstanceResponse {
  status: number;
  body: string;
}

/** GET an instance on its loopback endpoint, with the app's first domain as `Host`. */
export function fetchInstance(
  app: AppSettings,
  instance: Instance,
  path: string,
  scheme: "http" | "https",
  timeoutSeconds: number,
): Promise<InstanceResponse> {
  const endpoint = instance.endpoint;
  if (!endpoint) return Promise.reject(new Error("instance has no endpoint"));
  const request = scheme === "https" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: endpoint.host,
        port: endpoint.port,
        path,
        method: "GET",
        headers: { Host: app.domains[0] ?? `${app.name}.localhost`, "User-Agent": "berth-healthcheck" },
        timeout: timeoutSeconds * 1000,
        rejectUnauthorized: false,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          // Only the start of a body matters for a content check; never hold a huge page in memory.
          if (size < 1_000_000) chunks.push(chunk);
          size += chunk.length;
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        response.on("error", reject);
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error(`no answer within ${timeoutSeconds}s`)));
    outgoing.on("error", reject);
    outgoing.end();
  });
}

function abortableSleep(milliseconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, milliseconds);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
