import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "builder-herokuish",
    include: ["src/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Engine tests share the stack image and a 2-core machine: one file at a time.
    fileParallelism: false,
  },
});
