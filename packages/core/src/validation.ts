import { BerthError } from "./errors.js";

/**
 * The one place where user input is judged. Every public entry point of every package calls these
 * before anything is written; a rejection is a `BerthError` and nothing has changed.
 */

const APP_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const PROCESS_TYPE = /^[a-z][a-z0-9_-]{0,62}$/;
const CONFIG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOMAIN_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const RELEASE_ID = /^v([1-9][0-9]{0,8})$/;
const GIT_REF_NAME = /^[A-Za-z0-9._/-]{1,200}$/;

function show(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  return shown;
}

export function validateAppName(name: unknown): string {
  if (typeof name !== "string" || !APP_NAME.test(name)) {
    throw new BerthError(
      "INVALID_APP_NAME",
      `Invalid app name ${show(name)}: use 1-63 lower-case letters, digits and dashes, starting with a letter.`,
      { details: { value: name } },
    );
  }
  return name;
}

export function validateProcessType(type: unknown): string {
  if (typeof type !== "string" || !PROCESS_TYPE.test(type)) {
    throw new BerthError(
      "INVALID_PROCESS_TYPE",
      `Invalid process type ${show(type)}: use 1-63 lower-case letters, digits, '-' and '_', starting with a letter.`,
      { details: { value: type } },
    );
  }
  return type;
}

export function validateConfigKey(key: unknown): string {
  if (typeof key !== "string" || !CONFIG_KEY.test(key)) {
    throw new BerthError(
      "INVALID_CONFIG_KEY",
      `Invalid config key ${show(key)}: use letters, digits and '_', not starting with a digit.`,
      { details: { value: key } },
    );
  }
  return key;
}

/** Values may hold any UTF-8 text; they travel as environment entries, so only NUL cannot be carried. */
export function validateConfigValue(key: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new BerthError("INVALID_CONFIG_VALUE", `Config value of ${key} must be a string.`, {
      details: { key },
    });
  }
  if (value.includes("\0")) {
    throw new BerthError(
      "INVALID_CONFIG_VALUE",
      `Config value of ${key} contains a NUL byte, which no process environment can hold.`,
      { details: { key } },
    );
  }
  if (!value.isWellFormed()) {
    throw new BerthError("INVALID_CONFIG_VALUE", `Config value of ${key} is not valid UTF-8 text.`, {
      details: { key },
    });
  }
  return value;
}

export function validateConfigVars(vars: unknown): Record<string, string> {
  if (typeof vars !== "object" || vars === null || Array.isArray(vars)) {
    throw new BerthError("INVALID_CONFIG_VALUE", "Config must be an object of KEY: value pairs.");
  }
  const checked: Record<string, string> = {};
  for (const [key, value] of Object.entries(vars)) {
    checked[validateConfigKey(key)] = validateConfigValue(key, value);
  }
  return checked;
}

/** RFC 1123 host names, optionally a single leading `*.` wildcard; returned lower-cased. */
export function validateDomain(domain: unknown): string {
  const fail = (why: string): never => {
    throw new BerthError("INVALID_DOMAIN", `Invalid domain ${show(domain)}: ${why}`, {
      details: { value: domain },
    });
  };
  if (typeof domain !== "string" || domain.length === 0)
    return fail("give a host name such as app.example.com.");
  if (domain.length > 253) return fail("a host name has at most 253 characters.");
  const lower = domain.toLowerCase();
  const hostPart = lower.startsWith("*.") ? lower.slice(2) : lower;
  const labels = hostPart.split(".");
  for (const label of labels) {
    if (!DOMAIN_LABEL.test(label)) {
      return fail(
        "each dot-separated label needs 1-63 letters, digits or inner dashes (a wildcard only as a leading '*.').",
      );
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? "") && labels.length !== 4) {
    return fail("the last label of a host name cannot be all digits.");
  }
  return lower;
}

export function validatePort(port: unknown): number {
  const value = typeof port === "string" && /^[0-9]{1,5}$/.test(port) ? Number(port) : port;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new BerthError("INVALID_PORT", `Invalid port ${show(port)}: use a whole number from 1 to 65535.`, {
      details: { value: port },
    });
  }
  return value;
}

export function validateScale(type: unknown, quantity: unknown): number {
  validateProcessType(type);
  const value = typeof quantity === "string" && /^[0-9]{1,4}$/.test(quantity) ? Number(quantity) : quantity;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 1000) {
    throw new BerthError(
      "INVALID_SCALE",
      `Invalid scale ${show(quantity)} for ${String(type)}: use 0 to 1000.`,
      {
        details: { type, value: quantity },
      },
    );
  }
  return value;
}

/** Accepts `v3` or `3`; returns the release number. */
export function parseReleaseId(id: unknown): number {
  const text =
    typeof id === "number" ? `v${id}` : typeof id === "string" && /^[0-9]+$/.test(id) ? `v${id}` : id;
  const match = typeof text === "string" ? RELEASE_ID.exec(text) : null;
  if (!match?.[1]) {
    throw new BerthError("RELEASE_NOT_FOUND", `Invalid release ${show(id)}: name a release like v3.`, {
      details: { value: id },
    });
  }
  return Number(match[1]);
}

/** A branch name that may be chosen as an app's deploy branch. */
export function validateBranchName(branch: unknown): string {
  if (
    typeof branch !== "string" ||
    !GIT_REF_NAME.test(branch) ||
    branch.includes("..") ||
    branch.startsWith("/") ||
    branch.endsWith("/") ||
    branch.startsWith("-") ||
    branch.endsWith(".lock")
  ) {
    throw new BerthError("INVALID_REF", `Invalid branch name ${show(branch)}.`, {
      details: { value: branch },
    });
  }
  return branch;
}
