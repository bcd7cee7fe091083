#!/usr/bin/env node
import { runCli } from "./cli.js";

const controller = new AbortController();
// Ctrl-C stops following logs or a one-off run; a deploy keeps going in the daemon.
process.once("SIGINT", () => controller.abort());

const code = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  interactive: process.stdout.isTTY === true,
  signal: controller.signal,
});
process.exitCode = code;
