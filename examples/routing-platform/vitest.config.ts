import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "example-routing-platform",
    include: ["src/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
