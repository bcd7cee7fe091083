import { posix } from "node:path";
import { BerthError, type JsonValue, validateProcessType } from "@berth/core";

/**
 * Per-app settings of the Docker scheduler, stored by core under `app.plugins["scheduler-docker"]`:
 *
 *     {
 *       "restartPolicy": "on-failure:10",
 *       "stopGracePeriod": 10,
 *       "limits": { "_all_": { "memory": "256m" }, "web": { "memory": "512m", "cpus": 0.5 } },
 *       "volumes": ["uploads:/app/uploads", "/srv/shared:/app/shared:ro"],
 *       "isolatedNetwork": true
 *     }
 *
 * Everything is judged here before a container is created, so a bad value fails the deploy with
 * INVALID_SETTING and nothing is started.
 */

export interface RestartPolicy {
  Name: "no" | "always" | "unless-stopped" | "on-failure";
  MaximumRetryCount?: number;
}

export interface ResourceLimits {
  /** Memory limit in bytes. */
  memory?: number;
  /** CPU quota in billionths of a CPU (Docker's NanoCpus). */
  nanoCpus?: number;
}

export interface VolumeMount {
  type: "volume" | "bind";
  source: string;
  target: string;
  readOnly: boolean;
}

export interface DockerAppSettings {
  restartPolicy: RestartPolicy;
  stopGracePeriodSeconds: number;
  /** Keyed by process type, `_all_` for every type; a type's own entry wins per field. */
  limits: Record<string, ResourceLimits>;
  volumes: VolumeMount[];
  /**
   * A network of the app's own (`berth-<app>`) instead of the one all apps share. Off by default: an engine
   * has address pools for about 30 networks, and a platform hosts hundreds of apps.
   */
  isolatedNetwork: boolean;
}

/** The settings key under which core stores this plugin's per-app settings. */
export const SETTINGS_KEY = "scheduler-docker";

const KNOWN_KEYS = ["restartPolicy", "stopGracePeriod", "limits", "volumes", "isolatedNetwork"];
const MINIMUM_MEMORY = 6 * 1024 * 1024;
const MEMORY = /^([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?$/i;
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{1,127}$/;
const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new BerthError("INVALID_SETTING", `${message} (app setting ${SETTINGS_KEY}).`, { details });
}

export function parseRestartPolicy(value: unknown): RestartPolicy {
  if (typeof value === "string") {
    if (value === "no" || value === "always" || value === "unless-stopped") return { Name: value };
    const match = /^on-failure(?::([0-9]{1,4}))?$/.exec(value);
    if (match) {
      const count = match[1] === undefined ? 0 : Number(match[1]);
      return { Name: "on-failure", MaximumRetryCount: count };
    }
  }
  return invalid(
    `Invalid restart policy ${JSON.stringify(value)}: use no, always, unless-stopped, on-failure or on-failure:N`,
    { value },
  );
}

/** `512m`, `1g`, `1.5g`, `65536k` or a number of bytes; at least 6 MiB, Docker's own minimum. */
export function parseMemory(value: unknown, where: string): number {
  let bytes: number | undefined;
  if (typeof value === "number" && Number.isInteger(value)) bytes = value;
  else if (typeof value === "string") {
    const match = MEMORY.exec(value.trim());
    if (match?.[1] !== undefined)
      bytes = Math.floor(Number(match[1]) * (UNITS[match[2]?.toLowerCase() ?? ""] ?? 1));
  }
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < MINIMUM_MEMORY) {
    return invalid(
      `Invalid memory limit ${JSON.stringify(value)} for ${where}: use a size of at least 6m, such as 256m or 1g`,
      { value, processType: where },
    );
  }
  return bytes;
}

export function parseCpus(value: unknown, where: string): number {
  const cpus = typeof value === "string" && /^[0-9]+(\.[0-9]+)?$/.test(value.trim()) ? Number(value) : value;
  if (typeof cpus !== "number" || !Number.isFinite(cpus) || cpus < 0.01 || cpus > 1024) {
    return invalid(
      `Invalid CPU limit ${JSON.stringify(value)} for ${where}: use a number of CPUs such as 0.5 or 2`,
      {
        value,
        processType: where,
      },
    );
  }
  return Math.round(cpus * 1e9);
}

function parseLimits(value: unknown): Record<string, ResourceLimits> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid('limits must map process types (or "_all_") to { memory, cpus }');
  }
  const limits: Record<string, ResourceLimits> = {};
  for (const [type, entry] of Object.entries(value)) {
    if (type !== "_all_") {
      try {
        validateProcessType(type);
      } catch {
        return invalid(`limits has an invalid process type ${JSON.stringify(type)}`, { processType: type });
      }
    }
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      return invalid(`limits.${type} must be an object such as { "memory": "256m", "cpus": 0.5 }`);
    }
    const unknown = Object.keys(entry).filter((key) => key !== "memory" && key !== "cpus");
    if (unknown.length > 0)
      return invalid(`limits.${type} has unknown keys ${unknown.join(", ")}: use memory, cpus`);
    const fields = entry as Record<string, unknown>;
    limits[type] = {
      ...(fields.memory === undefined ? {} : { memory: parseMemory(fields.memory, type) }),
      ...(fields.cpus === undefined ? {} : { nanoCpus: parseCpus(fields.cpus, type) }),
    };
  }
  return limits;
}

function checkPath(path: string, what: string, text: string): string {
  const normalized =
    path.startsWith("/") && posix.normalize(path) === path && (path === "/" || !path.endsWith("/"));
  if (!normalized) {
    return invalid(
      `Invalid volume ${JSON.stringify(text)}: the ${what} must be an absolute, normalized path`,
      {
        value: text,
      },
    );
  }
  return path;
}

/** `name:/target[:ro|rw]` (a named volume) or `/host/path:/target[:ro|rw]` (a bind mount). */
export function parseVolume(text: unknown): VolumeMount {
  if (typeof text !== "string" || text.includes("\0") || text.includes(",")) {
    return invalid(
      `Invalid volume ${JSON.stringify(text)}: use name:/path or /host/path:/path, optionally :ro`,
    );
  }
  const parts = text.split(":");
  const [source, target, mode] = parts;
  if (
    parts.length < 2 ||
    parts.length > 3 ||
    !source ||
    !target ||
    (mode !== undefined && mode !== "ro" && mode !== "rw")
  ) {
    return invalid(
      `Invalid volume ${JSON.stringify(text)}: use name:/path or /host/path:/path, optionally :ro`,
      {
        value: text,
      },
    );
  }
  checkPath(target, "container path", text);
  if (target === "/")
    return invalid(`Invalid volume ${JSON.stringify(text)}: cannot mount over /`, { value: text });
  const readOnly = mode === "ro";
  if (source.startsWith("/"))
    return { type: "bind", source: checkPath(source, "host path", text), target, readOnly };
  if (!VOLUME_NAME.test(source)) {
    return invalid(
      `Invalid volume name ${JSON.stringify(source)}: use 2-128 letters, digits, '_', '.' or '-', starting with a letter or digit`,
      { value: text },
    );
  }
  return { type: "volume", source, target, readOnly };
}

function parseGracePeriod(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 3600) {
    return invalid(`Invalid stopGracePeriod ${JSON.stringify(value)}: use whole seconds from 0 to 3600`, {
      value,
    });
  }
  return value;
}

/** Reads and judges an app's settings for this scheduler; defaults fill what the app does not set. */
export function parseDockerSettings(
  raw: Record<string, JsonValue> | undefined,
  defaults: { restartPolicy: RestartPolicy; stopGracePeriodSeconds: number },
): DockerAppSettings {
  const settings = raw ?? {};
  const unknown = Object.keys(settings).filter((key) => !KNOWN_KEYS.includes(key));
  if (unknown.length > 0) {
    invalid(`Unknown setting ${unknown.join(", ")}: the Docker scheduler knows ${KNOWN_KEYS.join(", ")}`, {
      unknown,
    });
  }
  const volumes = settings.volumes ?? [];
  if (!Array.isArray(volumes)) invalid('volumes must be a list such as ["data:/app/data"]');
  const mounts = (volumes as JsonValue[]).map(parseVolume);
  const targets = new Set<string>();
  for (const mount of mounts) {
    if (targets.has(mount.target)) invalid(`Two volumes mount on ${mount.target}`, { target: mount.target });
    targets.add(mount.target);
  }
  return {
    restartPolicy:
      settings.restartPolicy === undefined
        ? defaults.restartPolicy
        : parseRestartPolicy(settings.restartPolicy),
    stopGracePeriodSeconds:
      settings.stopGracePeriod === undefined
        ? defaults.stopGracePeriodSeconds
        : parseGracePeriod(settings.stopGracePeriod),
    limits: parseLimits(settings.limits),
    volumes: mounts,
    isolatedNetwork: parseIsolatedNetwork(settings.isolatedNetwork),
  };
}

function parseIsolatedNetwork(value: JsonValue | undefined): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") invalid("isolatedNetwork must be true or false", { value });
  return value as boolean;
}

/** The limits that apply to one process type: its own entry over `_all_`. */
export function limitsFor(settings: DockerAppSettings, processType: string): ResourceLimits {
  return { ...settings.limits._all_, ...settings.limits[processType] };
}
