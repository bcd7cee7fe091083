import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { extname, isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { BerthError, validateDomain, validatePort } from "@berth/core";

/** A plugin to load by module name: the module's default export (or `plugin`) is a factory or a class. */
export interface PluginReference {
  module: string;
  /** Named export to use instead of the default one. */
  export?: string;
  options?: Record<string, unknown>;
}

/** What `berth.config.json` (or `.mjs`/`.ts`) may hold. Every field is optional. */
export interface BerthConfig {
  /** Where state lives (apps, releases, repos, nginx files, the API socket). */
  dataDir?: string;
  api?: {
    /** Unix socket of the API (mode 0660); default `<dataDir>/berth.sock`. */
    socket?: string;
    /** Also serve the API on 127.0.0.1:port, with token auth. */
    port?: number;
    /** Host the TCP API binds to; default 127.0.0.1. */
    host?: string;
    /** An admin token accepted on TCP besides those made with `tokens:create`. */
    token?: string;
  };
  proxy?: {
    /** nginx's HTTP port; default 80 (root) or 8080. */
    httpPort?: number;
    /** nginx's HTTPS port, used once an app has a certificate; default 443 (root) or 8443. */
    httpsPort?: number;
    /** Address nginx listens on; default `0.0.0.0` (a platform serves the network; the demo uses 127.0.0.1). */
    listen?: string;
  };
  git?: {
    /** Smart HTTP port for `git push`; default 8022. */
    httpPort?: number;
    /** SSH port for `git push` and `ssh berth@host COMMAND`; default 2222. */
    sshPort?: number;
    /** Address git's servers listen on; default 0.0.0.0. */
    host?: string;
  };
  /** Apps get `<app>.<domain>` unless they set domains. */
  domain?: string;
  /** Plugin names used when an app selects none. */
  defaults?: { builder?: string; scheduler?: string; proxy?: string };
  /** Default buildpacks (URLs) for apps that set none. */
  buildpacks?: string[];
  /** Extra plugins to apply after the built-in ones. */
  plugins?: Array<string | PluginReference>;
  /** Leave out built-in plugins (e.g. `["builder-herokuish"]` on a host without a stack image). */
  disable?: string[];
  /** Succeeded releases whose artifacts are kept for rollback. */
  keepReleases?: number;
}

/** The config after defaults: everything a daemon needs, resolved to absolute paths and numbers. */
export interface ResolvedConfig {
  dataDir: string;
  api: { socket: string; port: number | undefined; host: string; token: string | undefined };
  proxy: { httpPort: number; httpsPort: number; listen: string };
  git: { httpPort: number; sshPort: number; host: string };
  domain: string;
  defaults: { builder?: string; scheduler: string; proxy: string };
  buildpacks: string[];
  plugins: PluginReference[];
  disable: string[];
  keepReleases: number;
  /** The file the config came from, if any. */
  file: string | undefined;
}

const CONFIG_NAMES = ["berth.config.ts", "berth.config.mjs", "berth.config.js", "berth.config.json"];
const BUILT_IN = [
  "git",
  "builder-dockerfile",
  "builder-herokuish",
  "scheduler-docker",
  "proxy-nginx",
  "image",
];

/** Identity helper so a `berth.config.ts` gets types: `export default defineConfig({ … })`. */
export function defineConfig(config: BerthConfig): BerthConfig {
  return config;
}

export function defaultDataDir(): string {
  if (process.env.BERTH_DATA) return resolve(process.env.BERTH_DATA);
  return isRoot() ? "/var/lib/berth" : join(homedir(), ".berth");
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Finds the config file: the given path, else `BERTH_CONFIG`, else `berth.config.*` in the working
 * directory, else `<data>/berth.config.json`. No file at all is fine: every setting has a default.
 */
export async function findConfigFile(path?: string): Promise<string | undefined> {
  const explicit = path ?? process.env.BERTH_CONFIG;
  if (explicit) {
    const absolute = resolve(explicit);
    if (!(await isFile(absolute))) {
      throw new BerthError("INVALID_SETTING", `Config file ${absolute} does not exist.`, {
        details: { path: absolute },
      });
    }
    return absolute;
  }
  for (const name of CONFIG_NAMES) {
    const candidate = resolve(name);
    if (await isFile(candidate)) return candidate;
  }
  const inData = join(defaultDataDir(), "berth.config.json");
  return (await isFile(inData)) ? inData : undefined;
}

/** Reads and resolves the config; a malformed file fails with the file name and the field. */
export async function loadConfig(path?: string): Promise<ResolvedConfig> {
  const file = await findConfigFile(path);
  const raw = file ? await readConfigFile(file) : {};
  return resolveConfig(raw, file);
}

async function readConfigFile(file: string): Promise<unknown> {
  const extension = extname(file);
  if (extension === ".json") {
    const text = await readFile(file, "utf8");
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BerthError("INVALID_SETTING", `${file} is not valid JSON: ${(error as Error).message}`, {
        details: { path: file },
      });
    }
  }
  try {
    const loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
    return loaded.default ?? loaded;
  } catch (error) {
    const hint =
      extension === ".ts"
        ? " Node runs .ts files natively from version 22.18 (or with --experimental-strip-types); on older Node use berth.config.mjs or .json."
        : "";
    throw new BerthError("INVALID_SETTING", `Could not load ${file}: ${(error as Error).message}.${hint}`, {
      details: { path: file },
      cause: error,
    });
  }
}

/** Applies defaults and validates every field; unknown fields are refused so typos do not pass silently. */
export function resolveConfig(raw: unknown, file?: string): ResolvedConfig {
  const where = file ?? "the config";
  const fail = (field: string, why: string): never => {
    throw new BerthError("INVALID_SETTING", `${where}: ${field} ${why}`, { details: { field, file } });
  };
  const object = (value: unknown, field: string): Record<string, unknown> => {
    if (value === undefined) return {};
    if (typeof value !== "object" || value === null || Array.isArray(value))
      fail(field, "must be an object.");
    return value as Record<string, unknown>;
  };
  const only = (value: Record<string, unknown>, field: string, allowed: string[]) => {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key))
        fail(field ? `${field}.${key}` : key, `is not a known setting (known: ${allowed.join(", ")}).`);
    }
  };
  const port = (value: unknown, field: string, fallback: number): number => {
    if (value === undefined) return fallback;
    try {
      return validatePort(value);
    } catch {
      return fail(field, "must be a port number from 1 to 65535.");
    }
  };
  const text = (value: unknown, field: string): string | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value.length === 0) fail(field, "must be a non-empty string.");
    return value as string;
  };
  const pluginName = (value: unknown, field: string): string | undefined => {
    const name = text(value, field);
    if (name !== undefined && !/^[a-z][a-z0-9-]{0,62}$/.test(name)) fail(field, "must be a plugin name.");
    return name;
  };

  const root = object(raw, "config");
  only(root, "", [
    "dataDir",
    "api",
    "proxy",
    "git",
    "domain",
    "defaults",
    "buildpacks",
    "plugins",
    "disable",
    "keepReleases",
  ]);
  const base = file ? resolve(file, "..") : process.cwd();
  const dataDirText = text(root.dataDir, "dataDir");
  const dataDir = dataDirText
    ? isAbsolute(dataDirText)
      ? dataDirText
      : resolve(base, dataDirText)
    : defaultDataDir();

  const api = object(root.api, "api");
  only(api, "api", ["socket", "port", "host", "token"]);
  const socketText = text(api.socket, "api.socket");
  const token = text(api.token, "api.token");
  if (token !== undefined && token.length < 16) fail("api.token", "must have at least 16 characters.");

  const proxy = object(root.proxy, "proxy");
  only(proxy, "proxy", ["httpPort", "httpsPort", "listen"]);
  const git = object(root.git, "git");
  only(git, "git", ["httpPort", "sshPort", "host"]);

  const domainText = text(root.domain, "domain");
  let domain = "berth.localhost";
  if (domainText !== undefined) {
    try {
      domain = validateDomain(domainText);
    } catch {
      fail("domain", "must be a host name such as apps.example.com.");
    }
  }

  const defaults = object(root.defaults, "defaults");
  only(defaults, "defaults", ["builder", "scheduler", "proxy"]);
  const builder = pluginName(defaults.builder, "defaults.builder");

  const buildpacks = root.buildpacks ?? [];
  if (!Array.isArray(buildpacks) || buildpacks.some((entry) => typeof entry !== "string" || !entry)) {
    fail("buildpacks", "must be a list of buildpack URLs.");
  }

  const pluginsRaw = root.plugins ?? [];
  if (!Array.isArray(pluginsRaw)) fail("plugins", "must be a list of module names.");
  const plugins = (pluginsRaw as unknown[]).map((entry, index): PluginReference => {
    if (typeof entry === "string" && entry) return { module: entry };
    const reference = object(entry, `plugins[${index}]`);
    only(reference, `plugins[${index}]`, ["module", "export", "options"]);
    const module = text(reference.module, `plugins[${index}].module`);
    if (!module) return fail(`plugins[${index}].module`, "is required.");
    const exported = text(reference.export, `plugins[${index}].export`);
    return {
      module,
      ...(exported ? { export: exported } : {}),
      ...(reference.options === undefined ? {} : { options: object(reference.options, "options") }),
    };
  });

  const disable = root.disable ?? [];
  if (!Array.isArray(disable) || disable.some((entry) => !BUILT_IN.includes(entry as string))) {
    fail("disable", `must list built-in plugins among ${BUILT_IN.join(", ")}.`);
  }

  const keep = root.keepReleases ?? 5;
  if (typeof keep !== "number" || !Number.isInteger(keep) || keep < 1 || keep > 100) {
    fail("keepReleases", "must be a whole number from 1 to 100.");
  }

  const root_ = isRoot();
  return {
    dataDir,
    api: {
      socket: socketText ? resolve(base, socketText) : join(dataDir, "berth.sock"),
      port: api.port === undefined ? undefined : port(api.port, "api.port", 0),
      host: text(api.host, "api.host") ?? "127.0.0.1",
      token,
    },
    proxy: {
      httpPort: port(proxy.httpPort, "proxy.httpPort", root_ ? 80 : 8080),
      httpsPort: port(proxy.httpsPort, "proxy.httpsPort", root_ ? 443 : 8443),
      listen: text(proxy.listen, "proxy.listen") ?? "0.0.0.0",
    },
    git: {
      httpPort: port(git.httpPort, "git.httpPort", 8022),
      sshPort: port(git.sshPort, "git.sshPort", 2222),
      host: text(git.host, "git.host") ?? "0.0.0.0",
    },
    domain,
    defaults: {
      ...(builder ? { builder } : {}),
      scheduler: pluginName(defaults.scheduler, "defaults.scheduler") ?? "docker",
      proxy: pluginName(defaults.proxy, "defaults.proxy") ?? "nginx",
    },
    buildpacks: buildpacks as string[],
    plugins,
    disable: disable as string[],
    keepReleases: keep as number,
    file,
  };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
