import type { Platform } from "@berth/core";
import type { ResolvedConfig } from "./config.js";
import type { Composition } from "./daemon.js";

/**
 * The reference platform: core + git + builder-dockerfile + builder-herokuish + scheduler-docker + proxy-nginx,
 * plus the config's extra plugins. Embedders copy this function as their starting point.
 */
export async function composeBuiltIn(config: ResolvedConfig, _platform: Platform): Promise<Composition> {
  return { plugins: await loadExtraPlugins(config) };
}

/** Plugins named in the config: a module whose default (or named) export is a factory or a plugin class. */
export async function loadExtraPlugins(config: ResolvedConfig) {
  const plugins = [];
  for (const reference of config.plugins) {
    const loaded = (await import(reference.module)) as Record<string, unknown>;
    const exported = loaded[reference.export ?? "default"];
    if (typeof exported !== "function") {
      throw new Error(
        `Plugin module ${reference.module} has no ${reference.export ?? "default"} export to call.`,
      );
    }
    const factory = exported as (options?: unknown) => unknown;
    let plugin: unknown;
    try {
      plugin = factory(reference.options);
    } catch {
      plugin = new (exported as new (options?: unknown) => unknown)(reference.options);
    }
    if (!plugin || typeof (plugin as { apply?: unknown }).apply !== "function") {
      throw new Error(`Plugin module ${reference.module} did not produce a plugin (an object with apply()).`);
    }
    plugins.push(plugin as import("@berth/core").BerthPlugin);
  }
  return plugins;
}
