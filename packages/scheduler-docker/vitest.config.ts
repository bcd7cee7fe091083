import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "scheduler-docker",
    include: ["src/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Files share one Docker engine with other packages' tests on a small machine: one at a time.
    fileParallelism: false,
  },
});
