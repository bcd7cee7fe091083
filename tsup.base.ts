import type { Options } from "tsup";

/** The one build configuration every package re-uses: ESM, declarations, source maps. */
export function packageBuild(overrides: Partial<Options> = {}): Options {
  return {
    entry: ["src/index.ts"],
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    splitting: false,
    ...overrides,
  };
}
