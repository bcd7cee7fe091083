import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base.ts";

export default defineConfig(
  packageBuild({
    entry: { index: "src/index.ts", bin: "src/bin.ts" },
    // Separate chunks keep the daemon's plugins and the Docker client out of the CLI's start-up.
    splitting: true,
  }),
);
