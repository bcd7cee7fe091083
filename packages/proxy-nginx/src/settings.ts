import { BerthError, type JsonValue } from "@berth/core";

/**
 * Per-app nginx tuning, stored by core under `app.plugins["proxy-nginx"]`. Every value is judged here by a
 * strict pattern and turned into a typed value; nothing a user typed reaches a config file as raw text.
 */
export interface ProxySettings {
  /** `client_max_body_size`, e.g. `1m`, `512k`, `0` (no limit). */
  clientMaxBodySize: string;
  /** `proxy_connect_timeout`, e.g. `5s`. */
  proxyConnectTimeout: string;
  /** `proxy_read_timeout`, e.g. `60s`. */
  proxyReadTimeout: string;
  /** `proxy_send_timeout`, e.g. `60s`. */
  proxySendTimeout: string;
  /** `keepalive_timeout` towards clients, e.g. `75s` (`0` turns client keep-alive off). */
  keepaliveTimeout: string;
  /** Idle keep-alive connections each nginx worker keeps to the app's instances (`0` turns them off). */
  upstreamKeepalive: number;
  /** Send `Strict-Transport-Security` on HTTPS responses (only when the app has a certificate). */
  hsts: boolean;
  /** `max-age` of the HSTS header, in seconds. */
  hstsMaxAge: number;
}

export const DEFAULT_PROXY_SETTINGS: Readonly<ProxySettings> = Object.freeze({
  clientMaxBodySize: "1m",
  proxyConnectTimeout: "5s",
  proxyReadTimeout: "60s",
  proxySendTimeout: "60s",
  keepaliveTimeout: "75s",
  upstreamKeepalive: 16,
  hsts: false,
  hstsMaxAge: 31_536_000,
});

/** nginx sizes: digits with an optional k/m/g unit. */
const SIZE = /^(0|[1-9][0-9]{0,5})[kKmMgG]?$/;
/** nginx times: digits with an optional ms/s/m/h unit. */
const TIME = /^(0|[1-9][0-9]{0,5})(ms|s|m|h)?$/;

type SettingKind = "size" | "time" | "count" | "boolean" | "seconds";

const KINDS: Record<keyof ProxySettings, SettingKind> = {
  clientMaxBodySize: "size",
  proxyConnectTimeout: "time",
  proxyReadTimeout: "time",
  proxySendTimeout: "time",
  keepaliveTimeout: "time",
  upstreamKeepalive: "count",
  hsts: "boolean",
  hstsMaxAge: "seconds",
};

const EXAMPLES: Record<SettingKind, string> = {
  size: "a size such as 10m, 512k or 0",
  time: "a duration such as 30s, 500ms or 2m",
  count: "a whole number from 0 to 1024",
  boolean: "true or false",
  seconds: "a whole number of seconds from 0 to 315360000",
};

function invalid(key: string, value: unknown, kind: SettingKind): never {
  const shown = JSON.stringify(
    typeof value === "string" && value.length > 40 ? `${value.slice(0, 40)}…` : value,
  );
  throw new BerthError(
    "INVALID_SETTING",
    `Invalid proxy-nginx setting ${key}=${shown}: use ${EXAMPLES[kind]}.`,
    { details: { key, value } },
  );
}

function parseValue(key: string, value: JsonValue, kind: SettingKind): string | number | boolean {
  switch (kind) {
    case "size":
    case "time": {
      const text = typeof value === "number" && Number.isInteger(value) ? String(value) : value;
      if (typeof text !== "string" || !(kind === "size" ? SIZE : TIME).test(text)) invalid(key, value, kind);
      return text;
    }
    case "count":
    case "seconds": {
      const number = typeof value === "string" && /^[0-9]{1,9}$/.test(value) ? Number(value) : value;
      const maximum = kind === "count" ? 1024 : 315_360_000;
      if (typeof number !== "number" || !Number.isInteger(number) || number < 0 || number > maximum) {
        invalid(key, value, kind);
      }
      return number;
    }
    case "boolean": {
      if (value === true || value === "true") return true;
      if (value === false || value === "false") return false;
      return invalid(key, value, kind);
    }
  }
}

/**
 * Turns the stored settings object into typed settings over the defaults. Unknown keys are rejected too, so a
 * typo never silently does nothing.
 */
export function parseProxySettings(values: Record<string, JsonValue> | undefined): ProxySettings {
  const settings: ProxySettings = { ...DEFAULT_PROXY_SETTINGS };
  for (const [key, value] of Object.entries(values ?? {})) {
    if (!Object.hasOwn(KINDS, key)) {
      throw new BerthError(
        "INVALID_SETTING",
        `Unknown proxy-nginx setting ${JSON.stringify(key)}; known: ${Object.keys(KINDS).join(", ")}.`,
        { details: { key } },
      );
    }
    const name = key as keyof ProxySettings;
    (settings as unknown as Record<string, unknown>)[name] = parseValue(key, value, KINDS[name]);
  }
  return settings;
}
