import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "example-docker-platform",
    include: ["src/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    // One engine shared with other packages' tests on a small machine: one file at a time.
    fileParallelism: false,
  },
});
