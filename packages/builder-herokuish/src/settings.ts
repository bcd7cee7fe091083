import { BerthError, type Platform } from "@berth/core";
import { PLUGIN_NAME } from "./builder.js";
import { parseBuildpackReference } from "./buildpacks.js";

/**
 * An app's buildpack list (`buildpacks:set/add/remove/clear`), kept in `app.plugins["builder-herokuish"]`.
 * When set, it wins over `.buildpacks`, `BUILDPACK_URL` and detection.
 */
export async function listBuildpacks(platform: Platform, app: string): Promise<string[]> {
  const value = (await platform.apps.get(app)).plugins[PLUGIN_NAME]?.buildpacks;
  return Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === "string") : [];
}

export async function setBuildpacks(
  platform: Platform,
  app: string,
  buildpacks: string[],
): Promise<string[]> {
  const checked = buildpacks.map((buildpack) => parseBuildpackReference(buildpack).text);
  await platform.apps.setPluginSettings(app, PLUGIN_NAME, {
    buildpacks: checked.length > 0 ? checked : null,
  });
  return checked;
}

/** Adds a buildpack at `index` (0-based; default the end). */
export async function addBuildpack(
  platform: Platform,
  app: string,
  buildpack: string,
  index?: number,
): Promise<string[]> {
  const text = parseBuildpackReference(buildpack).text;
  const current = await listBuildpacks(platform, app);
  if (current.includes(text)) {
    throw new BerthError("INVALID_SETTING", `${text} is already in the buildpacks of ${app}.`);
  }
  const position = index === undefined ? current.length : Math.max(0, Math.min(index, current.length));
  current.splice(position, 0, text);
  return setBuildpacks(platform, app, current);
}

export async function removeBuildpack(platform: Platform, app: string, buildpack: string): Promise<string[]> {
  const current = await listBuildpacks(platform, app);
  const text = buildpack.trim();
  if (!current.includes(text)) {
    throw new BerthError(
      "INVALID_SETTING",
      `${text} is not in the buildpacks of ${app} (${current.join(", ") || "none set"}).`,
    );
  }
  return setBuildpacks(
    platform,
    app,
    current.filter((entry) => entry !== text),
  );
}

export async function clearBuildpacks(platform: Platform, app: string): Promise<void> {
  await setBuildpacks(platform, app, []);
}
