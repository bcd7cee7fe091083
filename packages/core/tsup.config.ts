import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base.ts";

export default defineConfig(
  packageBuild({
    entry: { index: "src/index.ts", "testing/index": "src/testing/index.ts" },
    external: ["vitest"],
    // One shared chunk, so `@berth/core/testing` uses the same BerthError class (instanceof) as `@berth/core`.
    splitting: true,
  }),
);
