import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { BerthError, isBerthError } from "@berth/core";
import { BerthClient, type ClientOptions } from "./api/client.js";
import { ALIASES, commands, findCommand } from "./commands/definitions.js";
import { exitCodeFor } from "./commands/execute.js";
import { formatDuration } from "./commands/format.js";
import { formatHelp, parseCommandArguments } from "./commands/parse.js";
import type { CommandDefinition, CommandInput } from "./commands/types.js";
import { loadConfig } from "./config.js";

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** True when stdout is a terminal (progress heartbeats). */
  interactive?: boolean;
  signal?: AbortSignal;
}

export const VERSION = "0.1.0";

const GLOBAL_OPTIONS = `Global options (before or after the command):
  --socket PATH        daemon socket (BERTH_SOCKET; default from the config, <data>/berth.sock)
  --api-url URL        TCP API, e.g. http://127.0.0.1:8021 (BERTH_API_URL), with --token (BERTH_TOKEN)
  --config FILE        berth.config.json|.mjs|.ts (BERTH_CONFIG)
  --json               JSON output for read commands
  -h, --help           help for a command

Exit codes: 0 ok · 1 failed · 2 bad input · 3 not found · 4 not allowed · 5 locked or exists · 69 no daemon`;

function overview(): string {
  const groups = new Map<string, CommandDefinition[]>();
  for (const command of commands) {
    const group = command.name.split(":")[0] as string;
    groups.set(group, [...(groups.get(group) ?? []), command]);
  }
  const lines = ["Usage: berth COMMAND [ARGS] [OPTIONS]", "", "Commands:"];
  for (const command of commands)
    lines.push(`  ${`${command.name} ${command.usage}`.padEnd(48)} ${command.summary}`);
  lines.push(`  ${"daemon".padEnd(48)} Run the daemon in the foreground (config from --config).`);
  lines.push(
    `  ${"doctor".padEnd(48)} Check Docker, nginx, git, disk, ports and the daemon; say what to fix.`,
  );
  lines.push(`  ${"version".padEnd(48)} Print the version.`);
  lines.push("", GLOBAL_OPTIONS, "", "berth COMMAND --help shows the command's options and an example.");
  return `${lines.join("\n")}\n`;
}

/** Pulls the global options out of argv wherever they are. */
function splitGlobals(argv: string[]): { rest: string[]; globals: Record<string, string> } {
  const globals: Record<string, string> = {};
  const rest: string[] = [];
  for (let index = 0; index < argv.length; index += 1) {
    const word = argv[index] as string;
    if (word === "--") {
      rest.push(...argv.slice(index));
      break;
    }
    const match = /^--(socket|api-url|token|config)(?:=(.*))?$/.exec(word);
    if (match) {
      const value = match[2] ?? argv[index + 1];
      if (match[2] === undefined) index += 1;
      if (value === undefined) throw new BerthError("USAGE", `--${match[1]} needs a value.`);
      globals[match[1] as string] = value;
    } else rest.push(word);
  }
  return { rest, globals };
}

export async function clientOptions(
  globals: Record<string, string>,
  env: NodeJS.ProcessEnv,
): Promise<ClientOptions> {
  const url = globals["api-url"] ?? env.BERTH_API_URL;
  const token = globals.token ?? env.BERTH_TOKEN;
  if (url) return { url, ...(token ? { token } : {}) };
  const socket = globals.socket ?? env.BERTH_SOCKET;
  if (socket) return { socket };
  const config = await loadConfig(globals.config);
  return { socket: config.api.socket };
}

/**
 * Runs `berth ARGS`: parses and checks the arguments locally, sends the command to the daemon, streams its
 * output with elapsed times, prints the result, and returns the exit code.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    const { rest, globals } = splitGlobals(argv);
    const [name, ...args] = rest;
    if (name === undefined || name === "help" || name === "--help" || name === "-h") {
      const topic = name === "help" && args[0] ? findCommand(args[0]) : undefined;
      io.stdout(topic ? formatHelp(topic) : overview());
      return 0;
    }
    if (name === "version" || name === "--version") {
      io.stdout(`berth ${VERSION}\n`);
      return 0;
    }
    if (name === "daemon") return await runDaemonCommand(args, globals, io);
    if (name === "doctor") {
      const options = await clientOptions(globals, io.env).catch(() => undefined);
      const config = await loadConfig(globals.config).catch(() => undefined);
      // Loaded on demand: the Docker client is heavy and every other command starts faster without it.
      const { runDoctor } = await import("./doctor.js");
      return await runDoctor({
        io,
        json: args.includes("--json"),
        ...(config ? { config } : {}),
        ...(options ? { client: options } : {}),
      });
    }
    const command = findCommand(name);
    if (!command) {
      throw new BerthError(
        "COMMAND_NOT_FOUND",
        `Unknown command ${JSON.stringify(name.slice(0, 40))}; berth help lists them.`,
      );
    }
    const input = parseCommandArguments(command, args);
    if (input.flags.help) {
      io.stdout(formatHelp(command));
      return 0;
    }
    await prepareInput(command, input);
    const client = new BerthClient(await clientOptions(globals, io.env));
    return await callDaemon(client, command, input, io);
  } catch (error) {
    return reportError(error, io);
  }
}

function reportError(error: unknown, io: CliIo): number {
  if (isBerthError(error)) {
    io.stderr(` !     ${error.message}\n !     [${error.code}]\n`);
    return exitCodeFor(error.code);
  }
  io.stderr(` !     ${(error as Error)?.message ?? String(error)}\n`);
  return 1;
}

/** Client-side parts of some commands: files are read here, so the daemon never opens a caller's paths. */
async function prepareInput(command: CommandDefinition, input: CommandInput): Promise<void> {
  if (command.name === "certs:add") {
    for (const flag of ["cert", "key"]) {
      const path = input.flags[flag];
      if (typeof path === "string") input.flags[flag] = await readFile(resolve(path), "utf8");
    }
  }
  if (
    command.name === "keys:add" &&
    input.args.length === 2 &&
    input.args[1] !== undefined &&
    !input.args[1].startsWith("ssh-") &&
    !input.args[1].startsWith("ecdsa-")
  ) {
    input.args[1] = (await readFile(resolve(input.args[1]), "utf8")).trim();
  }
  if (command.uploadFlag) {
    const dir = input.flags[command.uploadFlag];
    if (typeof dir === "string") {
      const absolute = resolve(dir);
      if (
        !(await stat(absolute).then(
          (info) => info.isDirectory(),
          () => false,
        ))
      ) {
        throw new BerthError("INVALID_SOURCE", `${absolute} is not a directory.`);
      }
      input.flags[command.uploadFlag] = absolute;
    }
  }
}

async function callDaemon(
  client: BerthClient,
  command: CommandDefinition,
  input: CommandInput,
  io: CliIo,
): Promise<number> {
  const started = Date.now();
  const progress = new Progress(io, started);
  const uploadDir = command.uploadFlag ? input.flags[command.uploadFlag] : undefined;
  // The daemon never sees the caller's path, only the uploaded content.
  const sent: CommandInput =
    typeof uploadDir === "string"
      ? { args: input.args, flags: { ...input.flags, [command.uploadFlag as string]: "-" } }
      : input;
  try {
    const response = await client.command(command.name, sent, {
      onOutput: (text) => progress.write(text),
      ...(typeof uploadDir === "string" ? { uploadDir } : {}),
      ...(io.signal ? { signal: io.signal } : {}),
    });
    progress.end();
    if (input.flags.json) {
      if (response.data !== null) io.stdout(`${JSON.stringify(response.data, null, 2)}\n`);
    } else if (command.render && response.data !== null) {
      const text = (command.render as (result: unknown, input: CommandInput) => string)(response.data, input);
      if (text) io.stdout(text.endsWith("\n") ? text : `${text}\n`);
    } else if (response.data !== null && !command.read && !progress.wrote) {
      io.stdout("OK\n");
    }
    if (progress.steps && !command.read)
      io.stdout(`=====> ${command.name} finished in ${formatDuration(Date.now() - started)}\n`);
    return response.exitCode;
  } catch (error) {
    progress.end();
    // Ctrl-C: the request was cut on purpose, whatever error the socket reports for it.
    if (io.signal?.aborted || (error as Error).name === "AbortError") return 130;
    return reportError(error, io);
  }
}

/** Streams the daemon's output; marks slow steps with their duration and says it is still working when quiet. */
class Progress {
  wrote = false;
  steps = false;
  readonly #io: CliIo;
  #stepStarted: number;
  #lastOutput: number;
  readonly #timer: NodeJS.Timeout;

  constructor(io: CliIo, started: number) {
    this.#io = io;
    this.#stepStarted = started;
    this.#lastOutput = started;
    const started_ = started;
    this.#timer = setInterval(() => {
      if (!this.wrote) return;
      const quiet = Date.now() - this.#lastOutput;
      if (quiet >= 10_000) {
        this.#lastOutput = Date.now();
        io.stdout(`       … still working (${formatDuration(Date.now() - started_)} so far)\n`);
      }
    }, 1000);
    this.#timer.unref();
  }

  write(text: string): void {
    const now = Date.now();
    if (text.startsWith("-----> ") && this.wrote && now - this.#stepStarted >= 2000) {
      this.#io.stdout(`       (${formatDuration(now - this.#stepStarted)})\n`);
    }
    if (text.startsWith("-----> ")) {
      this.#stepStarted = now;
      this.steps = true;
    }
    this.#lastOutput = now;
    this.wrote = true;
    this.#io.stdout(text);
  }

  end(): void {
    clearInterval(this.#timer);
  }
}

async function runDaemonCommand(args: string[], globals: Record<string, string>, io: CliIo): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    io.stdout(
      "Usage: berth daemon [--config FILE]\n\nRuns the daemon in the foreground: reconcile, nginx, git over HTTP and SSH, the API.\nStop it with SIGTERM; apps keep running.\n\nExample:\n  berth daemon --config /etc/berth/berth.config.json\n",
    );
    return 0;
  }
  if (args.length > 0)
    throw new BerthError("USAGE", `Unknown daemon argument ${args[0]}. Usage: berth daemon [--config FILE]`);
  const { loadConfig: load } = await import("./config.js");
  const { startDaemon } = await import("./daemon.js");
  const config = await load(globals.config ?? io.env.BERTH_CONFIG);
  const daemon = await startDaemon({ config, log: (line) => io.stderr(`${line}\n`) });
  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  io.stderr("berth daemon stopping (apps keep running)\n");
  await daemon.stop();
  return 0;
}

export { ALIASES };
