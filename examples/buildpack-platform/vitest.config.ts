import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "example-buildpack-platform",
    include: ["src/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    // One engine shared with other packages' tests on a small machine: one file at a time.
    fileParallelism: false,
  },
});
