import { defineProject } from "vitest/config";

export default defineProject({
  // One file at a time: every file runs real git and ssh processes and the machine has two cores.
  test: {
    name: "git",
    include: ["src/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    // The streaming test collects garbage before each memory sample, so it measures what is held.
    execArgv: ["--expose-gc"],
  },
});
