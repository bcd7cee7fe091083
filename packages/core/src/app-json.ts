import { parseCronSchedule } from "./cron.js";
import { BerthError } from "./errors.js";
import { jsonErrorOffset } from "./json-position.js";
import type { AppJson, CronEntry, EnvSpec, HealthCheck } from "./model.js";
import { validateConfigKey, validatePort, validateProcessType } from "./validation.js";

/**
 * Parses app.json in Dokku's format. Known keys are checked field by field and errors name the field path
 * (`healthchecks.web[0].attempts`); unknown keys are ignored, as Heroku and Dokku do.
 */
export function parseAppJson(text: string, file = "app.json"): AppJson {
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    const where = ` at ${lineAndColumn(text, jsonErrorOffset(text.replace(/^\uFEFF/, "")))}`;
    throw new BerthError("APP_JSON_INVALID", `${file}: not valid JSON${where}: ${(error as Error).message}`, {
      details: { file },
      cause: error,
    });
  }
  const reader = new FieldReader(file);
  const root = reader.object(raw, "");
  const appJson: AppJson = {};
  if (root.name !== undefined) appJson.name = reader.string(root.name, "name");
  if (root.scripts !== undefined) appJson.scripts = readScripts(reader, root.scripts);
  if (root.formation !== undefined) appJson.formation = readFormation(reader, root.formation);
  if (root.env !== undefined) appJson.env = readEnv(reader, root.env);
  if (root.healthchecks !== undefined) appJson.healthchecks = readHealthchecks(reader, root.healthchecks);
  if (root.cron !== undefined) appJson.cron = readCron(reader, root.cron);
  return appJson;
}

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position).split("\n");
  return `line ${before.length}, column ${(before[before.length - 1]?.length ?? 0) + 1}`;
}

class FieldReader {
  constructor(readonly file: string) {}

  fail(path: string, why: string): never {
    throw new BerthError("APP_JSON_INVALID", `${this.file}: ${path || "top level"} ${why}`, {
      details: { file: this.file, field: path },
    });
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      this.fail(path, "must be an object.");
    return value as Record<string, unknown>;
  }

  string(value: unknown, path: string): string {
    if (typeof value !== "string") this.fail(path, "must be a string.");
    return value as string;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== "boolean") this.fail(path, "must be true or false.");
    return value as boolean;
  }

  number(value: unknown, path: string, minimum: number, maximum: number): number {
    if (typeof value !== "number" || !Number.isFinite(value) || value < minimum || value > maximum) {
      this.fail(path, `must be a number from ${minimum} to ${maximum}.`);
    }
    return value as number;
  }

  integer(value: unknown, path: string, minimum: number, maximum: number): number {
    const number = this.number(value, path, minimum, maximum);
    if (!Number.isInteger(number)) this.fail(path, "must be a whole number.");
    return number;
  }

  processType(value: string, path: string): string {
    try {
      return validateProcessType(value);
    } catch (error) {
      return this.fail(path, `is not a valid process type: ${(error as Error).message}`);
    }
  }
}

function readScripts(reader: FieldReader, value: unknown): NonNullable<AppJson["scripts"]> {
  const scripts = reader.object(value, "scripts");
  const result: NonNullable<AppJson["scripts"]> = {};
  if (scripts.postdeploy !== undefined)
    result.postdeploy = reader.string(scripts.postdeploy, "scripts.postdeploy");
  if (scripts.dokku !== undefined) {
    const dokku = reader.object(scripts.dokku, "scripts.dokku");
    result.dokku = {};
    if (dokku.predeploy !== undefined)
      result.dokku.predeploy = reader.string(dokku.predeploy, "scripts.dokku.predeploy");
    if (dokku.postdeploy !== undefined) {
      result.dokku.postdeploy = reader.string(dokku.postdeploy, "scripts.dokku.postdeploy");
    }
  }
  return result;
}

function readFormation(reader: FieldReader, value: unknown): NonNullable<AppJson["formation"]> {
  const formation = reader.object(value, "formation");
  const result: NonNullable<AppJson["formation"]> = {};
  for (const [type, entry] of Object.entries(formation)) {
    const path = `formation.${type}`;
    reader.processType(type, path);
    const fields = reader.object(entry, path);
    result[type] = {};
    if (fields.quantity !== undefined) {
      result[type].quantity = reader.integer(fields.quantity, `${path}.quantity`, 0, 1000);
    }
    if (fields.max_parallel !== undefined) {
      result[type].maxParallel = reader.integer(fields.max_parallel, `${path}.max_parallel`, 1, 1000);
    }
  }
  return result;
}

function readEnv(reader: FieldReader, value: unknown): Record<string, EnvSpec> {
  const env = reader.object(value, "env");
  const result: Record<string, EnvSpec> = {};
  for (const [key, entry] of Object.entries(env)) {
    const path = `env.${key}`;
    try {
      validateConfigKey(key);
    } catch (error) {
      reader.fail(path, `is not a valid config key: ${(error as Error).message}`);
    }
    // Heroku allows the short form `"KEY": "default value"`.
    if (typeof entry === "string") {
      result[key] = { value: entry, required: true };
      continue;
    }
    const fields = reader.object(entry, path);
    const spec: EnvSpec = {
      required: fields.required === undefined ? true : reader.boolean(fields.required, `${path}.required`),
    };
    if (fields.description !== undefined)
      spec.description = reader.string(fields.description, `${path}.description`);
    if (fields.value !== undefined) spec.value = reader.string(fields.value, `${path}.value`);
    if (fields.generator !== undefined) {
      if (fields.generator !== "secret") reader.fail(`${path}.generator`, 'must be "secret".');
      spec.generator = "secret";
    }
    result[key] = spec;
  }
  return result;
}

const CHECK_TYPES = new Set(["startup", "liveness", "readiness"]);

function readHealthchecks(reader: FieldReader, value: unknown): Record<string, HealthCheck[]> {
  const all = reader.object(value, "healthchecks");
  const result: Record<string, HealthCheck[]> = {};
  for (const [type, list] of Object.entries(all)) {
    const listPath = `healthchecks.${type}`;
    reader.processType(type, listPath);
    if (!Array.isArray(list)) reader.fail(listPath, "must be a list of checks.");
    result[type] = (list as unknown[]).map((entry, index) => {
      const path = `${listPath}[${index}]`;
      const fields = reader.object(entry, path);
      const checkType = fields.type === undefined ? "startup" : reader.string(fields.type, `${path}.type`);
      if (!CHECK_TYPES.has(checkType)) reader.fail(`${path}.type`, "must be startup, liveness or readiness.");
      const check: HealthCheck = {
        type: checkType as HealthCheck["type"],
        attempts:
          fields.attempts === undefined ? 3 : reader.integer(fields.attempts, `${path}.attempts`, 1, 100),
        wait: fields.wait === undefined ? 1 : reader.number(fields.wait, `${path}.wait`, 0, 600),
        timeout:
          fields.timeout === undefined ? 5 : reader.number(fields.timeout, `${path}.timeout`, 0.1, 600),
        initialDelay:
          fields.initialDelay === undefined
            ? 0
            : reader.number(fields.initialDelay, `${path}.initialDelay`, 0, 600),
      };
      if (fields.name !== undefined) check.name = reader.string(fields.name, `${path}.name`);
      if (fields.path !== undefined) {
        const checkPath = reader.string(fields.path, `${path}.path`);
        if (!checkPath.startsWith("/") || /[\s\0]/.test(checkPath)) {
          reader.fail(`${path}.path`, "must start with / and contain no whitespace.");
        }
        check.path = checkPath;
      }
      if (fields.content !== undefined) check.content = reader.string(fields.content, `${path}.content`);
      if (fields.uptime !== undefined) check.uptime = reader.number(fields.uptime, `${path}.uptime`, 0, 600);
      if (fields.listening !== undefined)
        check.listening = reader.boolean(fields.listening, `${path}.listening`);
      if (fields.scheme !== undefined) {
        const scheme = reader.string(fields.scheme, `${path}.scheme`);
        if (scheme !== "http" && scheme !== "https") reader.fail(`${path}.scheme`, "must be http or https.");
        check.scheme = scheme;
      }
      if (fields.port !== undefined) {
        try {
          check.port = validatePort(fields.port);
        } catch {
          reader.fail(`${path}.port`, "must be a port from 1 to 65535.");
        }
      }
      if (fields.command !== undefined) {
        const command = fields.command;
        if (
          !Array.isArray(command) ||
          command.length === 0 ||
          command.some((part) => typeof part !== "string")
        ) {
          reader.fail(`${path}.command`, "must be a non-empty list of strings.");
        }
        check.command = command as string[];
      }
      return check;
    });
  }
  return result;
}

function readCron(reader: FieldReader, value: unknown): CronEntry[] {
  if (!Array.isArray(value)) reader.fail("cron", "must be a list of entries.");
  return (value as unknown[]).map((entry, index) => {
    const path = `cron[${index}]`;
    const fields = reader.object(entry, path);
    const schedule = reader.string(fields.schedule, `${path}.schedule`).trim();
    try {
      parseCronSchedule(schedule);
    } catch (error) {
      reader.fail(`${path}.schedule`, `is invalid: ${(error as Error).message}`);
    }
    const command = reader.string(fields.command, `${path}.command`);
    if (command.trim() === "") reader.fail(`${path}.command`, "must not be empty.");
    return { schedule, command };
  });
}
