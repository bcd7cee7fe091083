import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "example-heroku-features",
    include: ["src/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
