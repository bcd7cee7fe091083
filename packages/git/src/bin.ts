#!/usr/bin/env node
import { runShell } from "./shell.js";

runShell(process.argv.slice(2), process.env);
