import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "cli",
    include: ["src/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    // The end-to-end files share one Docker engine, nginx ports and the demo stack image.
    fileParallelism: false,
  },
});
