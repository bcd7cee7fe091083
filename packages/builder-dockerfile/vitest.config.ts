import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "builder-dockerfile",
    include: ["src/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Builds share one engine on a small machine; one file at a time keeps them from starving each other.
    fileParallelism: false,
  },
});
