import { type AppSettings, BerthError, type JsonValue, validateConfigKey } from "@berth/core";

/** The key of this builder's per-app settings in `app.plugins`. */
export const SETTINGS_KEY = "builder-dockerfile";

export const DEFAULT_DOCKERFILE_PATH = "Dockerfile";

/** Per-app settings, stored under `app.plugins["builder-dockerfile"]`. */
export interface DockerfileSettings {
  /** Where the Dockerfile sits in the source, relative to its root (monorepos); the context stays the root. */
  dockerfilePath: string;
  /** Names of config vars passed as build args; opt-in because config often holds secrets. */
  buildArgs: string[];
}

// One path segment: no separators, no NUL, nothing a shell or the engine could read as more than a name.
const PATH_SEGMENT = /^[A-Za-z0-9._@+-]{1,255}$/;

/**
 * A Dockerfile path must name a file inside the source: relative, forward slashes, no `.`/`..` segments.
 * Symlinks that leave the source are caught later, when the build context is packed.
 */
export function validateDockerfilePath(value: unknown): string {
  const fail = (why: string): never => {
    throw new BerthError(
      "INVALID_SETTING",
      `Invalid ${SETTINGS_KEY} dockerfilePath ${JSON.stringify(String(value).slice(0, 80))}: ${why}`,
      { details: { setting: "dockerfilePath", value } },
    );
  };
  if (typeof value !== "string" || value.length === 0) return fail("give a path such as Dockerfile.");
  if (value.length > 1024) return fail("use at most 1024 characters.");
  if (value.startsWith("/"))
    return fail("use a path relative to the root of the source, not an absolute one.");
  const segments = value.split("/");
  for (const segment of segments) {
    if (segment === "..") return fail("the Dockerfile must stay inside the source; remove '..'.");
    if (segment === "." || segment === "")
      return fail("write the path without '.' segments or doubled or trailing slashes.");
    if (!PATH_SEGMENT.test(segment)) return fail("use letters, digits and . _ @ + - between slashes.");
  }
  return value;
}

function validateBuildArgs(value: unknown): string[] {
  if (!Array.isArray(value)) {
    throw new BerthError(
      "INVALID_SETTING",
      `Invalid ${SETTINGS_KEY} buildArgs: give a list of config var names, such as ["NODE_ENV"].`,
      { details: { setting: "buildArgs" } },
    );
  }
  return [...new Set(value.map((name) => validateConfigKey(name)))];
}

/** Reads and validates the app's settings for this builder, falling back to the defaults. */
export function readDockerfileSettings(app: Pick<AppSettings, "plugins"> | undefined): DockerfileSettings {
  const stored: Record<string, JsonValue> = app?.plugins[SETTINGS_KEY] ?? {};
  return {
    dockerfilePath:
      stored.dockerfilePath === undefined
        ? DEFAULT_DOCKERFILE_PATH
        : validateDockerfilePath(stored.dockerfilePath),
    buildArgs: stored.buildArgs === undefined ? [] : validateBuildArgs(stored.buildArgs),
  };
}
