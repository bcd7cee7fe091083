import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  type AppSettings,
  BerthError,
  type BerthEvent,
  type CronJob,
  formatPortMapping,
  type InstanceStatus,
  type Release,
  validateAppName,
  validateConfigKey,
  validateConfigVars,
  validateDomain,
  validateProcessType,
} from "@berth/core";
import { validateCredentialName } from "../api-tokens.js";
import { validateImageReference } from "../image-reference.js";
import { formatTable, shellQuote } from "./format.js";
import type { CommandContext, CommandDefinition, CommandInput } from "./types.js";

/** Plugin settings key of `apps:lock` (deploys refused while set). */
export const CLI_SETTINGS = "cli";
const HEROKUISH = "builder-herokuish";

function appOf(input: CommandInput): string {
  return validateAppName(input.args[0]);
}

function flagText(input: CommandInput, name: string): string | undefined {
  const value = input.flags[name];
  return typeof value === "string" ? value : undefined;
}

function flagList(input: CommandInput, name: string): string[] {
  const value = input.flags[name];
  return Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
}

export async function appUrls(context: CommandContext, app: AppSettings): Promise<string[]> {
  const proxy = context.platform.proxyFor(app);
  if (!proxy) return [];
  try {
    return (await proxy.status(app.name)).urls;
  } catch {
    return [];
  }
}

function defaultDomain(context: CommandContext, app: string): string {
  return `${app}.${context.services.config.domain}`;
}

/** What `releases` sends for each release: enough for the table, without config values. */
interface ReleaseSummary {
  id: string;
  status: Release["status"];
  current: boolean;
  createdAt: string;
  description: string;
  image: string;
  failure?: Release["failure"];
}

function releaseRow(release: ReleaseSummary): string[] {
  return [
    release.current ? "*" : "",
    release.id,
    release.failure ? `${release.status} (${release.failure.code})` : release.status,
    release.createdAt.replace("T", " ").slice(0, 19),
    release.description,
    release.image,
  ];
}

function summarizeDeploy(result: { release: string; urls: string[] }): string {
  return [`Release: ${result.release}`, ...result.urls.map((url) => `URL:     ${url}`)].join("\n");
}

async function deployResult(context: CommandContext, app: string, release: Release) {
  const settings = await context.platform.apps.get(app);
  return { app, release: release.id, urls: await appUrls(context, settings) };
}

function checksChange(types: string[]): string[] {
  const checked = types.length === 0 ? ["_all_"] : types;
  for (const type of checked) if (type !== "_all_") validateProcessType(type);
  return checked;
}

function requireService<T>(service: T | undefined, what: string): T {
  if (!service) {
    throw new BerthError(
      "NOT_SUPPORTED",
      `${what} is not available: the plugin providing it is disabled in the daemon's config.`,
    );
  }
  return service;
}

/** `--from-dir` uploads a tar of the directory; it is unpacked into a private temporary directory. */
async function receiveUpload(context: CommandContext): Promise<string> {
  if (!context.upload)
    throw new BerthError(
      "INVALID_SOURCE",
      "deploy --from-dir needs the directory's tar as the request body.",
    );
  const { extract } = await import("tar-fs");
  const dir = await mkdtemp(join(tmpdir(), "berth-upload-"));
  try {
    await pipeline(
      context.upload as Readable,
      extract(dir, {
        // Only plain files, directories and symlinks that stay inside the source.
        ignore: (_name, header) =>
          header !== undefined && !["file", "directory", "symlink"].includes(header.type),
        dmode: 0o755,
        fmode: 0o644,
        readable: true,
        writable: true,
      }),
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new BerthError(
      "INVALID_SOURCE",
      `Could not unpack the uploaded directory: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return dir;
}

export const commands: CommandDefinition[] = [
  // --- apps ---
  {
    name: "apps:create",
    summary: "Create an app. It gets the domain <app>.<global domain> unless you set others.",
    usage: "APP",
    example: "berth apps:create hello",
    scope: "admin",
    minArgs: 1,
    maxArgs: 1,
    flags: {
      builder: { type: "string", description: "Builder to use (dockerfile, herokuish); default: detected." },
      "deploy-branch": { type: "string", description: "Branch whose pushes deploy (default main)." },
    },
    async run(input, context) {
      const name = appOf(input);
      const builder = flagText(input, "builder");
      const deployBranch = flagText(input, "deploy-branch");
      const app = await context.platform.apps.create(name, {
        ...(builder ? { builder } : {}),
        ...(deployBranch ? { deployBranch } : {}),
      });
      const domains = await context.platform.domains.add(name, [defaultDomain(context, name)]);
      context.output.step(`Created ${name}`);
      return { ...app, domains, git: context.services.gitEndpoints ?? {} };
    },
    render: (result: { name: string; git: { http?: string; ssh?: string } }) =>
      [
        result.git.http ? `       git remote add berth ${result.git.http}/${result.name}.git` : "",
        result.git.ssh ? `       git remote add berth ${result.git.ssh}/${result.name}.git` : "",
      ]
        .filter(Boolean)
        .join("\n"),
  },
  {
    name: "apps:destroy",
    summary: "Destroy an app: its containers, images, routes, repository and state. Cannot be undone.",
    usage: "APP --force",
    example: "berth apps:destroy hello --force",
    scope: "admin",
    minArgs: 1,
    maxArgs: 1,
    detached: true,
    flags: { force: { type: "boolean", description: "Confirm: destroy without asking." } },
    async run(input, context) {
      const name = appOf(input);
      if (!input.flags.force) {
        throw new BerthError(
          "CONFIRMATION_REQUIRED",
          `Destroying ${name} cannot be undone; repeat with --force.`,
        );
      }
      await context.platform.apps.destroy(name, { output: context.output });
      context.output.step(`Destroyed ${name}`);
      return { app: name, destroyed: true };
    },
  },
  {
    name: "apps:list",
    summary: "List apps (app-scoped credentials see their own apps).",
    usage: "",
    example: "berth apps:list --json",
    scope: "any",
    read: true,
    minArgs: 0,
    maxArgs: 0,
    async run(_input, context) {
      const names = await context.platform.apps.list();
      return context.principal.admin ? names : names.filter((name) => context.principal.apps.includes(name));
    },
    render: (names: string[]) => names.join("\n"),
  },
  {
    name: "apps:rename",
    summary: "Rename an app; running instances are replaced under the new name.",
    usage: "OLD NEW",
    example: "berth apps:rename hello greeter",
    scope: "admin",
    minArgs: 2,
    maxArgs: 2,
    detached: true,
    async run(input, context) {
      const from = appOf(input);
      const to = validateAppName(input.args[1]);
      const before = await context.platform.apps.get(from);
      await context.platform.apps.rename(from, to, { output: context.output });
      const oldDefault = defaultDomain(context, from);
      if (before.domains.includes(oldDefault)) {
        // Add before removing: an app is never left without a domain in between.
        await context.platform.domains.add(to, [defaultDomain(context, to)]);
        await context.platform.domains.remove(to, [oldDefault]);
      }
      return { from, to };
    },
  },
  {
    name: "apps:report",
    summary: "Show an app's settings, release, instances and URLs.",
    usage: "APP",
    example: "berth apps:report hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      const app = await context.platform.apps.get(name);
      const state = await context.platform.apps.state(name);
      const instances = state.currentRelease ? await context.platform.ps.status(name).catch(() => []) : [];
      return {
        app: name,
        createdAt: app.createdAt,
        builder: app.builder ?? context.platform.defaults.builder ?? "detected",
        scheduler: app.scheduler ?? context.platform.defaults.scheduler,
        proxy: app.proxy ?? context.platform.defaults.proxy ?? "none",
        deployBranch: app.deployBranch ?? "main",
        currentRelease: state.currentRelease ?? null,
        stopped: state.stopped === true,
        deployLocked: app.plugins[CLI_SETTINGS]?.deployLocked === true,
        domains: app.domains,
        ports: app.ports.map(formatPortMapping),
        scale: app.scale,
        checks: app.checks,
        plugins: app.plugins,
        urls: await appUrls(context, app),
        instances: instances.map((instance) => ({
          name: `${instance.processType}.${instance.index}`,
          release: instance.release,
          running: instance.running,
          endpoint: instance.endpoint ? `${instance.endpoint.host}:${instance.endpoint.port}` : null,
        })),
      };
    },
    render: (report: Record<string, unknown>) =>
      Object.entries(report)
        .map(
          ([key, value]) =>
            `${`${key}:`.padEnd(16)} ${typeof value === "string" ? value : JSON.stringify(value)}`,
        )
        .join("\n"),
  },
  {
    name: "apps:lock",
    summary: "Refuse deploys of an app until apps:unlock.",
    usage: "APP",
    example: "berth apps:lock hello",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      await context.platform.apps.setPluginSettings(name, CLI_SETTINGS, { deployLocked: true });
      context.output.step(`Deploys of ${name} are locked`);
      return { app: name, deployLocked: true };
    },
  },
  {
    name: "apps:unlock",
    summary: "Allow deploys again, and remove a lock left by an operation that is gone.",
    usage: "APP",
    example: "berth apps:unlock hello",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      const holder = await context.platform.apps.unlock(name);
      await context.platform.apps.setPluginSettings(name, CLI_SETTINGS, { deployLocked: null });
      context.output.step(
        holder
          ? `Removed the lock of ${holder.operation} (pid ${holder.pid}); deploys of ${name} allowed`
          : `Deploys of ${name} allowed`,
      );
      return { app: name, deployLocked: false, removedHolder: holder ?? null };
    },
  },

  // --- config ---
  {
    name: "config:show",
    summary: "Show an app's config vars.",
    usage: "APP",
    example: "berth config:show hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    run: (input, context) => context.platform.config.all(appOf(input)),
    render: (vars: Record<string, string>) =>
      formatTable(Object.entries(vars).map(([key, value]) => [`${key}:`, value])),
  },
  {
    name: "config:get",
    summary: "Print one config var's value (exit code 3 when unset).",
    usage: "APP KEY",
    example: "berth config:get hello GREETING",
    scope: "app",
    read: true,
    minArgs: 2,
    maxArgs: 2,
    async run(input, context) {
      const key = validateConfigKey(input.args[1]);
      const value = await context.platform.config.get(appOf(input), key);
      if (value === undefined)
        throw new BerthError("CONFIG_NOT_FOUND", `${key} is not set for ${input.args[0]}.`);
      return value;
    },
    render: (value: string) => value,
  },
  {
    name: "config:set",
    summary: "Set config vars; restarts the app as a new release unless --no-restart.",
    usage: "APP KEY=VALUE...",
    example: "berth config:set hello GREETING='hi there' WORKERS=2",
    scope: "app",
    minArgs: 2,
    detached: true,
    flags: {
      "no-restart": { type: "boolean", description: "Store only; the next deploy or restart uses it." },
    },
    async run(input, context) {
      const name = appOf(input);
      const vars: Record<string, string> = {};
      for (const pair of input.args.slice(1)) {
        const equals = pair.indexOf("=");
        if (equals <= 0)
          throw new BerthError(
            "INVALID_CONFIG_KEY",
            `Expected KEY=VALUE, got ${JSON.stringify(pair.slice(0, 80))}.`,
          );
        vars[pair.slice(0, equals)] = pair.slice(equals + 1);
      }
      validateConfigVars(vars);
      const release = await context.platform.config.set(name, vars, {
        output: context.output,
        restart: !input.flags["no-restart"],
      });
      return { app: name, set: Object.keys(vars), release: release?.id ?? null };
    },
    render: (result: { release: string | null }) => (result.release ? `Release: ${result.release}` : ""),
  },
  {
    name: "config:unset",
    summary: "Remove config vars; restarts the app as a new release unless --no-restart.",
    usage: "APP KEY...",
    example: "berth config:unset hello GREETING",
    scope: "app",
    minArgs: 2,
    detached: true,
    flags: {
      "no-restart": { type: "boolean", description: "Store only; the next deploy or restart uses it." },
    },
    async run(input, context) {
      const name = appOf(input);
      const keys = input.args.slice(1).map(validateConfigKey);
      const release = await context.platform.config.unset(name, keys, {
        output: context.output,
        restart: !input.flags["no-restart"],
      });
      return { app: name, unset: keys, release: release?.id ?? null };
    },
    render: (result: { release: string | null }) => (result.release ? `Release: ${result.release}` : ""),
  },
  {
    name: "config:export",
    summary: "Print config vars as shell exports (or .env lines), safely quoted.",
    usage: "APP",
    example: 'eval "$(berth config:export hello)"',
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    flags: { format: { type: "string", description: "shell (default) or envfile." } },
    async run(input, context) {
      const format = flagText(input, "format") ?? "shell";
      if (format !== "shell" && format !== "envfile")
        throw new BerthError("USAGE", "--format is shell or envfile.");
      const vars = await context.platform.config.all(appOf(input));
      return { format, vars };
    },
    render: (result: { format: string; vars: Record<string, string> }) =>
      Object.entries(result.vars)
        .map(([key, value]) =>
          result.format === "shell" ? `export ${key}=${shellQuote(value)}` : `${key}=${shellQuote(value)}`,
        )
        .join("\n"),
  },

  // --- domains ---
  ...(["add", "remove", "set"] as const).map(
    (verb): CommandDefinition => ({
      name: `domains:${verb}`,
      summary: `${verb === "add" ? "Add" : verb === "remove" ? "Remove" : "Replace the"} domains ${verb === "remove" ? "from" : verb === "add" ? "to" : "of"} an app; nginx re-routes at once.`,
      usage: "APP DOMAIN...",
      example: `berth domains:${verb} hello www.example.com`,
      scope: "app",
      minArgs: 2,
      async run(input, context) {
        const name = appOf(input);
        const domains = input.args.slice(1).map(validateDomain);
        const result = await context.platform.domains[verb](name, domains);
        return { app: name, domains: result };
      },
      render: (result: { domains: string[] }) => result.domains.join("\n"),
    }),
  ),
  {
    name: "domains:clear",
    summary: "Remove every domain of an app.",
    usage: "APP",
    example: "berth domains:clear hello",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      return { app: name, domains: await context.platform.domains.clear(name) };
    },
  },
  {
    name: "domains:report",
    summary: "Show an app's domains and URLs.",
    usage: "APP",
    example: "berth domains:report hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const app = await context.platform.apps.get(appOf(input));
      return {
        app: app.name,
        domains: app.domains,
        globalDomain: context.services.config.domain,
        urls: await appUrls(context, app),
      };
    },
    render: (result: { domains: string[]; urls: string[] }) =>
      [
        `domains: ${result.domains.join(" ") || "(none)"}`,
        `urls:    ${result.urls.join(" ") || "(not routed)"}`,
      ].join("\n"),
  },

  // --- ports ---
  {
    name: "ports:list",
    summary: "List an app's port mappings (scheme:host-port:container-port).",
    usage: "APP",
    example: "berth ports:list hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      return (await context.platform.ports.list(appOf(input))).map(formatPortMapping);
    },
    render: (ports: string[]) => ports.join("\n") || "(derived from the release)",
  },
  ...(["add", "set", "remove"] as const).map(
    (verb): CommandDefinition => ({
      name: `ports:${verb}`,
      summary: `${verb === "add" ? "Add" : verb === "set" ? "Replace" : "Remove"} port mappings of an app.`,
      usage: "APP SCHEME:HOST-PORT:CONTAINER-PORT...",
      example: `berth ports:${verb} hello http:80:5000`,
      scope: "app",
      minArgs: verb === "set" ? 1 : 2,
      async run(input, context) {
        const name = appOf(input);
        const ports = await context.platform.ports[verb](name, input.args.slice(1));
        return { app: name, ports: ports.map(formatPortMapping) };
      },
      render: (result: { ports: string[] }) => result.ports.join("\n"),
    }),
  ),

  // --- processes ---
  {
    name: "ps:scale",
    summary: "Set instances per process type; zero-downtime, through the deploy checks.",
    usage: "APP TYPE=N...",
    example: "berth ps:scale hello web=2 worker=1",
    scope: "app",
    minArgs: 2,
    detached: true,
    async run(input, context) {
      const name = appOf(input);
      const quantities: Record<string, string> = {};
      for (const pair of input.args.slice(1)) {
        const [type, count, ...rest] = pair.split("=");
        if (type === undefined || count === undefined || rest.length > 0) {
          throw new BerthError("INVALID_SCALE", `Expected TYPE=N, got ${JSON.stringify(pair.slice(0, 80))}.`);
        }
        quantities[type] = count;
      }
      const formation = await context.platform.ps.scale(name, quantities, { output: context.output });
      return { app: name, formation };
    },
    render: (result: { formation: Record<string, number> }) =>
      Object.entries(result.formation)
        .map(([type, count]) => `${type}=${count}`)
        .join(" "),
  },
  ...(["restart", "stop", "start"] as const).map(
    (verb): CommandDefinition => ({
      name: `ps:${verb}`,
      summary:
        verb === "restart"
          ? "Restart every process of the current release (new instances first, then the switch)."
          : verb === "stop"
            ? "Stop every process of an app (it stays stopped across daemon restarts)."
            : "Start a stopped app.",
      usage: "APP",
      example: `berth ps:${verb} hello`,
      scope: "app",
      minArgs: 1,
      maxArgs: 1,
      detached: true,
      async run(input, context) {
        const name = appOf(input);
        const result = await context.platform.ps[verb](name, { output: context.output });
        context.output.step(
          `${verb === "restart" ? "Restarted" : verb === "stop" ? "Stopped" : "Started"} ${name}`,
        );
        return { app: name, release: (result as Release | undefined)?.id ?? null };
      },
    }),
  ),
  {
    name: "ps:rebuild",
    summary: "Build the current release's source again and deploy it.",
    usage: "APP",
    example: "berth ps:rebuild hello",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    detached: true,
    async run(input, context) {
      const name = appOf(input);
      const sources = requireService(context.services.sources, "ps:rebuild");
      const current = await context.platform.releases.current(name);
      const source = await sources.checkout(name, current?.source.rev);
      try {
        const release = await context.platform.deploy(
          name,
          { kind: "git", dir: source.dir, rev: source.rev },
          { output: context.output },
        );
        return deployResult(context, name, release);
      } finally {
        await source.cleanup();
      }
    },
    render: summarizeDeploy,
  },
  {
    name: "ps:report",
    summary: "Show an app's instances: type, release, state, restarts and endpoint.",
    usage: "APP",
    example: "berth ps:report hello --json",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      const state = await context.platform.apps.state(name);
      const instances = await context.platform.ps.status(name);
      return {
        app: name,
        stopped: state.stopped === true,
        currentRelease: state.currentRelease ?? null,
        instances,
      };
    },
    render: (report: { instances: InstanceStatus[]; stopped: boolean }) =>
      formatTable([
        ["INSTANCE", "RELEASE", "STATE", "RESTARTS", "ENDPOINT"],
        ...report.instances.map((instance) => [
          `${instance.processType}.${instance.index}`,
          instance.release,
          instance.running
            ? "running"
            : `exited${instance.exitCode === undefined ? "" : ` (${instance.exitCode})`}`,
          String(instance.restarts),
          instance.endpoint ? `${instance.endpoint.host}:${instance.endpoint.port}` : "-",
        ]),
      ]) + (report.stopped ? "\n(stopped)" : ""),
  },

  // --- logs, run ---
  {
    name: "logs",
    summary: "Show an app's logs; -t follows them.",
    usage: "APP",
    example: "berth logs hello -t -p web -n 50",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    flags: {
      tail: { type: "boolean", short: "t", description: "Keep following new lines." },
      num: { type: "string", short: "n", description: "Lines of history per instance (default 100)." },
      process: { type: "string", short: "p", description: "Only this process type." },
    },
    async run(input, context) {
      const name = appOf(input);
      const count = flagText(input, "num");
      if (count !== undefined && !/^[0-9]{1,6}$/.test(count))
        throw new BerthError("USAGE", "-n takes a number of lines.");
      const processType = flagText(input, "process");
      if (processType !== undefined) validateProcessType(processType);
      await context.platform.logs(
        name,
        {
          tail: count === undefined ? 100 : Number(count),
          follow: input.flags.tail === true,
          signal: context.signal,
          ...(processType ? { processType } : {}),
        },
        (line) => {
          context.write(
            input.flags.json
              ? `${JSON.stringify(line)}\n`
              : `${line.time ? `${line.time} ` : ""}${line.source}: ${line.line}\n`,
          );
        },
      );
      return null;
    },
  },
  {
    name: "run",
    summary:
      "Run a one-off command in a new container of the current release; exits with its exit code. One argument is a shell command line; several are run as given.",
    usage: "APP COMMAND...",
    example: "berth run hello env",
    scope: "app",
    minArgs: 2,
    restAfter: 1,
    flags: { env: { type: "list", short: "e", description: "Extra KEY=VALUE for this run only." } },
    async run(input, context) {
      const name = appOf(input);
      const env: Record<string, string> = {};
      for (const pair of flagList(input, "env")) {
        const equals = pair.indexOf("=");
        if (equals <= 0) throw new BerthError("INVALID_CONFIG_KEY", `Expected KEY=VALUE after --env.`);
        env[pair.slice(0, equals)] = pair.slice(equals + 1);
      }
      // One word is a shell command line as typed (`run app "echo $X | wc"`); several words are argv, quoted
      // so the one-off runs exactly them (`run app sh -c 'echo "$X"'`).
      const words = input.args.slice(1);
      const command =
        words.length === 1
          ? (words[0] as string)
          : words.map((word) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : shellQuote(word))).join(" ");
      const result = await context.platform.run(name, command, {
        env: validateConfigVars(env),
        signal: context.signal,
        onOutput: (chunk) => context.write(chunk),
      });
      context.setExitCode(result.exitCode);
      return { exitCode: result.exitCode };
    },
    render: () => "",
  },

  // --- releases ---
  {
    name: "releases",
    summary: "List an app's releases, newest last.",
    usage: "APP",
    example: "berth releases hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      const releases = await context.platform.releases.list(name);
      const state = await context.platform.apps.state(name);
      return releases.map(
        (release): ReleaseSummary => ({
          id: release.id,
          status: release.status,
          current: release.id === state.currentRelease,
          createdAt: release.createdAt,
          description: release.description,
          image: release.artifact.image,
          ...(release.failure ? { failure: release.failure } : {}),
        }),
      );
    },
    render: (releases: ReleaseSummary[]) =>
      formatTable([
        ["", "RELEASE", "STATUS", "CREATED", "DESCRIPTION", "IMAGE"],
        ...releases.map(releaseRow),
      ]),
  },
  {
    name: "releases:info",
    summary: "Show one release: artifact, process types, config keys, source.",
    usage: "APP RELEASE",
    example: "berth releases:info hello v3",
    scope: "app",
    read: true,
    minArgs: 2,
    maxArgs: 2,
    async run(input, context) {
      const release = await context.platform.releases.get(appOf(input), input.args[1] as string);
      // Config values can be secrets: the info shows which keys the release has, config:show shows values.
      return { ...release, config: Object.keys(release.config) };
    },
    render: (release: Omit<Release, "config"> & { config: string[] }) =>
      [
        `release:      ${release.id} (${release.status})`,
        `created:      ${release.createdAt}`,
        `description:  ${release.description}`,
        `source:       ${release.source.kind}${release.source.rev ? ` ${release.source.rev}` : ""}${release.source.from ? ` from ${release.source.from}` : ""}`,
        `image:        ${release.artifact.image} (${release.artifact.builder})`,
        `config keys:  ${release.config.join(" ") || "(none)"}`,
        "processes:",
        ...Object.entries(release.processTypes).map(([type, command]) => `  ${type}: ${command}`),
        ...(release.failure ? [`failure:      [${release.failure.code}] ${release.failure.message}`] : []),
      ].join("\n"),
  },
  {
    name: "rollback",
    summary: "Deploy an earlier release again (its image and config), as a new release.",
    usage: "APP RELEASE",
    example: "berth rollback hello v1",
    scope: "app",
    minArgs: 2,
    maxArgs: 2,
    detached: true,
    async run(input, context) {
      const name = appOf(input);
      const release = await context.platform.rollback(name, input.args[1] as string, {
        output: context.output,
      });
      return deployResult(context, name, release);
    },
    render: summarizeDeploy,
  },

  // --- builders ---
  {
    name: "builder:set",
    summary: "Select the builder of an app (dockerfile, herokuish); no name goes back to detection.",
    usage: "APP [BUILDER]",
    example: "berth builder:set hello herokuish",
    scope: "app",
    minArgs: 1,
    maxArgs: 2,
    async run(input, context) {
      const name = appOf(input);
      const builder = input.args[1];
      if (builder !== undefined && !context.platform.builders.has(builder)) {
        throw new BerthError(
          "PLUGIN_NOT_FOUND",
          `Builder ${JSON.stringify(builder.slice(0, 40))} is not installed (installed: ${[...context.platform.builders.keys()].join(", ")}).`,
        );
      }
      const app = await context.platform.apps.configure(name, {
        builder: builder ?? (undefined as unknown as string),
      });
      return { app: name, builder: app.builder ?? null };
    },
  },
  {
    name: "buildpacks:list",
    summary: "List an app's buildpacks (empty: the daemon's defaults, else detection).",
    usage: "APP",
    example: "berth buildpacks:list hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const app = await context.platform.apps.get(appOf(input));
      return (app.plugins[HEROKUISH]?.buildpacks as string[] | undefined) ?? [];
    },
    render: (buildpacks: string[]) => buildpacks.map((url, index) => `${index + 1}. ${url}`).join("\n"),
  },
  ...(["add", "set", "remove", "clear"] as const).map(
    (verb): CommandDefinition => ({
      name: `buildpacks:${verb}`,
      summary:
        verb === "add"
          ? "Add a buildpack (URL, optionally #ref) to an app, last unless --index."
          : verb === "set"
            ? "Replace an app's buildpacks."
            : verb === "remove"
              ? "Remove a buildpack from an app."
              : "Remove every buildpack of an app (back to detection).",
      usage: verb === "clear" ? "APP" : "APP URL...",
      example:
        verb === "clear"
          ? "berth buildpacks:clear hello"
          : `berth buildpacks:${verb} hello https://github.com/heroku/heroku-buildpack-nodejs.git`,
      scope: "app",
      minArgs: verb === "clear" ? 1 : 2,
      ...(verb === "clear" ? { maxArgs: 1 } : {}),
      ...(verb === "add"
        ? { flags: { index: { type: "string", description: "1-based position to insert at." } } }
        : {}),
      async run(input, context) {
        const name = appOf(input);
        const given = input.args.slice(1).map(validateBuildpack);
        if (!context.principal.admin && given.some((url) => url.startsWith("/") || url.startsWith("file:"))) {
          // A host directory is code the builder runs: only admins may point an app at one.
          throw new BerthError("FORBIDDEN", "Only admins may use buildpacks from directories on the host.");
        }
        const app = await context.platform.apps.get(name);
        const current = (app.plugins[HEROKUISH]?.buildpacks as string[] | undefined) ?? [];
        let next: string[];
        if (verb === "add") {
          const index = flagText(input, "index");
          if (index !== undefined && !/^[1-9][0-9]{0,2}$/.test(index))
            throw new BerthError("USAGE", "--index takes a position from 1.");
          next = current.filter((url) => !given.includes(url));
          next.splice(index === undefined ? next.length : Number(index) - 1, 0, ...given);
        } else if (verb === "set") next = [...new Set(given)];
        else if (verb === "remove") {
          const missing = given.filter((url) => !current.includes(url));
          if (missing.length > 0)
            throw new BerthError("BUILDPACK_NOT_FOUND", `${name} does not use ${missing.join(", ")}.`);
          next = current.filter((url) => !given.includes(url));
        } else next = [];
        await context.platform.apps.setPluginSettings(name, HEROKUISH, {
          buildpacks: next.length > 0 ? next : null,
        });
        return { app: name, buildpacks: next };
      },
      render: (result: { buildpacks: string[] }) =>
        result.buildpacks.map((url, index) => `${index + 1}. ${url}`).join("\n"),
    }),
  ),

  // --- checks ---
  {
    name: "checks:report",
    summary: "Show which process types have their checks disabled or skipped.",
    usage: "APP",
    example: "berth checks:report hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      return (await context.platform.apps.get(appOf(input))).checks;
    },
    render: (checks: { disabled: string[]; skipped: string[] }) =>
      `disabled: ${checks.disabled.join(" ") || "(none)"}\nskipped:  ${checks.skipped.join(" ") || "(none)"}`,
  },
  {
    name: "checks:set",
    summary: "Set the process types whose checks are disabled or skipped (replaces the list).",
    usage: "APP disabled|skipped [TYPE...]",
    example: "berth checks:set hello skipped worker",
    scope: "app",
    minArgs: 2,
    async run(input, context) {
      const name = appOf(input);
      const which = input.args[1];
      if (which !== "disabled" && which !== "skipped")
        throw new BerthError("USAGE", "checks:set takes disabled or skipped.");
      const types = input.args.slice(2);
      for (const type of types) if (type !== "_all_") validateProcessType(type);
      const app = await context.platform.apps.get(name);
      const updated = await context.platform.apps.configure(name, {
        checks: { ...app.checks, [which]: types },
      });
      return { app: name, checks: updated.checks };
    },
  },
  ...(["disable", "skip", "enable"] as const).map(
    (verb): CommandDefinition => ({
      name: `checks:${verb}`,
      summary:
        verb === "disable"
          ? "Turn checks off for process types (default all): instances count as healthy at once."
          : verb === "skip"
            ? "Skip configured checks for process types (default all); the uptime wait still applies."
            : "Turn checks back on for process types (default all).",
      usage: "APP [TYPE...]",
      example: `berth checks:${verb} hello${verb === "enable" ? "" : " worker"}`,
      scope: "app",
      minArgs: 1,
      async run(input, context) {
        const name = appOf(input);
        const types = checksChange(input.args.slice(1));
        const app = await context.platform.apps.get(name);
        const without = (list: string[]) =>
          list.filter((type) => !types.includes(type) && !types.includes("_all_"));
        const checks =
          verb === "enable"
            ? { disabled: without(app.checks.disabled), skipped: without(app.checks.skipped) }
            : verb === "disable"
              ? { disabled: [...new Set([...app.checks.disabled, ...types])], skipped: app.checks.skipped }
              : { disabled: app.checks.disabled, skipped: [...new Set([...app.checks.skipped, ...types])] };
        const updated = await context.platform.apps.configure(name, { checks });
        return { app: name, checks: updated.checks };
      },
    }),
  ),

  // --- certificates ---
  {
    name: "certs:add",
    summary: "Serve an app over HTTPS with a certificate and key (PEM files read by the CLI).",
    usage: "APP --cert FILE --key FILE",
    example: "berth certs:add hello --cert server.crt --key server.key",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    flags: {
      cert: { type: "string", description: "PEM certificate (chain) file; over the API: its contents." },
      key: { type: "string", description: "PEM private key file; over the API: its contents." },
    },
    async run(input, context) {
      const name = appOf(input);
      const certificate = flagText(input, "cert");
      const key = flagText(input, "key");
      if (!certificate || !key) throw new BerthError("USAGE", "certs:add needs --cert and --key.");
      const info = await requireService(context.services.certificates, "certs:add").add(
        name,
        certificate,
        key,
      );
      context.output.step(`${name} now serves HTTPS`);
      return info;
    },
  },
  {
    name: "certs:generate",
    summary: "Make a self-signed certificate for an app's domains (for tests and internal apps).",
    usage: "APP [DOMAIN...]",
    example: "berth certs:generate hello",
    scope: "app",
    minArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      const domains = input.args.slice(1).map(validateDomain);
      const app = await context.platform.apps.get(name);
      const info = await requireService(context.services.certificates, "certs:generate").generate(
        name,
        domains.length > 0 ? domains : app.domains,
      );
      context.output.step(`${name} now serves HTTPS with a self-signed certificate`);
      return info;
    },
  },
  {
    name: "certs:remove",
    summary: "Stop serving an app over HTTPS and delete its certificate.",
    usage: "APP",
    example: "berth certs:remove hello",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      await context.platform.apps.get(name);
      await requireService(context.services.certificates, "certs:remove").remove(name);
      return { app: name, removed: true };
    },
  },
  {
    name: "certs:report",
    summary: "Show an app's certificate.",
    usage: "APP",
    example: "berth certs:report hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = appOf(input);
      await context.platform.apps.get(name);
      return (await requireService(context.services.certificates, "certs:report").report(name)) ?? null;
    },
  },

  // --- keys and tokens ---
  {
    name: "keys:add",
    summary: "Allow an SSH public key to push and run commands; --app limits it to those apps.",
    usage: "NAME PUBLIC-KEY (or a .pub file)",
    example: 'berth keys:add alice "$(cat ~/.ssh/id_ed25519.pub)" --app hello',
    scope: "admin",
    minArgs: 2,
    flags: { app: { type: "list", description: "Only these apps (repeatable); default: admin key." } },
    async run(input, context) {
      const name = validateCredentialName(input.args[0], "key");
      const apps = flagList(input, "app").map(validateAppName);
      return requireService(context.services.keys, "keys:add").add(
        name,
        input.args.slice(1).join(" "),
        apps.length > 0 ? apps : null,
      );
    },
    render: (key: { name: string; fingerprint: string }) => `${key.name} ${key.fingerprint}`,
  },
  {
    name: "keys:remove",
    summary: "Remove an SSH key.",
    usage: "NAME",
    example: "berth keys:remove alice",
    scope: "admin",
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const name = validateCredentialName(input.args[0], "key");
      await requireService(context.services.keys, "keys:remove").remove(name);
      return { name, removed: true };
    },
  },
  {
    name: "keys:list",
    summary: "List SSH keys and what they may do.",
    usage: "",
    example: "berth keys:list --json",
    scope: "admin",
    read: true,
    minArgs: 0,
    maxArgs: 0,
    run: (_input, context) => requireService(context.services.keys, "keys:list").list(),
    render: (keys: Array<{ name: string; fingerprint: string; apps: string[] | null }>) =>
      formatTable([
        ["NAME", "FINGERPRINT", "ACCESS"],
        ...keys.map((key) => [key.name, key.fingerprint, key.apps ? key.apps.join(",") : "admin"]),
      ]),
  },
  {
    name: "tokens:create",
    summary:
      "Create a token (shown once, as NAME:SECRET) for the API and git over HTTP; --app limits it to those apps.",
    usage: "NAME",
    example: "berth tokens:create ci --app hello",
    scope: "admin",
    minArgs: 1,
    maxArgs: 1,
    flags: { app: { type: "list", description: "Only these apps (repeatable); default: admin token." } },
    async run(input, context) {
      const apps = flagList(input, "app").map(validateAppName);
      const { token, record } = await context.services.tokens.create(
        input.args[0] as string,
        apps.length > 0 ? apps : null,
      );
      return { name: record.user, id: record.id, apps: record.admin ? null : record.apps, token };
    },
    render: (result: { token: string }) => result.token,
  },
  {
    name: "tokens:revoke",
    summary: "Revoke the tokens of NAME (or one token by its id).",
    usage: "NAME",
    example: "berth tokens:revoke ci",
    scope: "admin",
    minArgs: 1,
    maxArgs: 1,
    async run(input, context) {
      const revoked = await context.services.tokens.revoke(input.args[0] as string);
      return { name: input.args[0], revoked };
    },
  },
  {
    name: "tokens:list",
    summary: "List API tokens (names and scopes; tokens themselves are never stored).",
    usage: "",
    example: "berth tokens:list",
    scope: "admin",
    read: true,
    minArgs: 0,
    maxArgs: 0,
    async run(_input, context) {
      return context.services.tokens.list();
    },
    render: (
      tokens: Array<{ id: string; user: string; admin: boolean; apps: string[]; createdAt: string }>,
    ) =>
      formatTable([
        ["NAME", "ID", "ACCESS", "CREATED"],
        ...tokens.map((token) => [
          token.user,
          token.id,
          token.admin ? "admin" : token.apps.join(","),
          token.createdAt,
        ]),
      ]),
  },

  // --- events ---
  {
    name: "events",
    summary: "Show the audit log (deploys, config changes, scaling…); -t follows it.",
    usage: "[APP]",
    example: "berth events hello -n 20",
    scope: "any",
    read: true,
    minArgs: 0,
    maxArgs: 1,
    flags: {
      tail: { type: "boolean", short: "t", description: "Keep following new events." },
      num: { type: "string", short: "n", description: "How many past events (default 50)." },
    },
    async run(input, context) {
      const app = input.args[0] === undefined ? undefined : appOf(input);
      if (!context.principal.admin && (app === undefined || !context.principal.apps.includes(app))) {
        throw new BerthError(
          "FORBIDDEN",
          "App-scoped credentials see the events of their own apps: name the app.",
        );
      }
      const count = flagText(input, "num") ?? "50";
      if (!/^[0-9]{1,6}$/.test(count)) throw new BerthError("USAGE", "-n takes a number of events.");
      const visible = (event: BerthEvent) => app === undefined || event.app === app;
      const show = (event: BerthEvent) =>
        context.write(
          input.flags.json
            ? `${JSON.stringify(event)}\n`
            : `${event.time} ${(event.app ?? "-").padEnd(12)} ${event.type}${event.data ? ` ${JSON.stringify(event.data)}` : ""}\n`,
        );
      const text = await readFile(join(context.platform.dataDir, "events.jsonl"), "utf8").catch(() => "");
      const past = text
        .split("\n")
        .filter(Boolean)
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as BerthEvent];
          } catch {
            return [];
          }
        })
        .filter(visible);
      for (const event of past.slice(-Number(count))) show(event);
      if (input.flags.tail) {
        await new Promise<void>((resolve) => {
          const unsubscribe = context.platform.events.subscribe((event) => {
            if (visible(event)) show(event);
          });
          context.signal.addEventListener("abort", () => {
            unsubscribe();
            resolve();
          });
        });
      }
      return null;
    },
  },

  // --- deploy without git, stacks, cron ---
  {
    name: "deploy",
    summary: "Deploy without git: a local directory (uploaded) or an image on the engine (no build).",
    usage: "APP (--from-dir DIR | --from-image IMAGE)",
    example: "berth deploy hello --from-dir . ; berth deploy hello --from-image myorg/web:1.2",
    scope: "app",
    minArgs: 1,
    maxArgs: 1,
    detached: true,
    uploadFlag: "from-dir",
    flags: {
      "from-dir": { type: "string", description: "Directory to build and deploy (the CLI uploads it)." },
      "from-image": { type: "string", description: "Existing local image to release as is." },
    },
    async run(input, context) {
      const name = appOf(input);
      const image = flagText(input, "from-image");
      const fromDir = input.flags["from-dir"] !== undefined;
      if ((image === undefined) === !fromDir)
        throw new BerthError("USAGE", "Give exactly one of --from-dir or --from-image.");
      const app = await context.platform.apps.get(name);
      if (app.plugins[CLI_SETTINGS]?.deployLocked === true) {
        throw new BerthError("APP_LOCKED", `Deploys of ${name} are locked; run apps:unlock ${name} first.`);
      }
      if (image !== undefined) {
        validateImageReference(image);
        const release = await context.services.images.deploy(context.platform, name, image, {
          output: context.output,
        });
        return deployResult(context, name, release);
      }
      const dir = await receiveUpload(context);
      try {
        const release = await context.platform.deploy(name, { kind: "dir", dir }, { output: context.output });
        return deployResult(context, name, release);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    render: summarizeDeploy,
  },
  {
    name: "stack:build",
    summary: "Build the buildpack stack image from the local Debian base (offline; minutes the first time).",
    usage: "",
    example: "berth stack:build",
    scope: "admin",
    minArgs: 0,
    maxArgs: 0,
    detached: true,
    flags: { force: { type: "boolean", description: "Rebuild even when the image exists." } },
    async run(input, context) {
      return requireService(context.services.stack, "stack:build").build(context.output, {
        force: input.flags.force === true,
      });
    },
    render: (result: { image: string }) => `Stack image: ${result.image}`,
  },
  {
    name: "cron:list",
    summary: "List an app's cron entries (app.json `cron`) with their next run.",
    usage: "APP",
    example: "berth cron:list hello",
    scope: "app",
    read: true,
    minArgs: 1,
    maxArgs: 1,
    run: (input, context) => context.platform.cron.list(appOf(input)),
    render: (entries: CronJob[]) =>
      formatTable([
        ["ID", "SCHEDULE", "NEXT RUN", "LAST", "COMMAND"],
        ...entries.map((entry) => [
          entry.id,
          entry.schedule,
          entry.next ?? "-",
          entry.running
            ? "running"
            : entry.last
              ? `exit ${entry.last.exitCode} at ${entry.last.startedAt}`
              : "-",
          entry.command,
        ]),
      ]),
  },
  {
    name: "cron:run",
    summary: "Run one cron entry now, as a one-off container of the current release.",
    usage: "APP ID",
    example: "berth cron:run hello 0",
    scope: "app",
    minArgs: 2,
    maxArgs: 2,
    async run(input, context) {
      const name = appOf(input);
      const id = input.args[1] as string;
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(id))
        throw new BerthError(
          "CRON_NOT_FOUND",
          `Invalid cron entry id ${JSON.stringify(id.slice(0, 64))}; see cron:list ${name}.`,
        );
      const exitCode = await context.platform.cron.run(name, id, (chunk) => context.write(chunk));
      context.setExitCode(exitCode);
      return { exitCode };
    },
  },
];

/** Buildpack URLs (git or tarball, optional #ref); nothing that a shell or git could read as an option. */
function validateBuildpack(url: string): string {
  if (
    !/^(https?:\/\/|git@|file:\/\/|\/)[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]{1,500}$/.test(url) ||
    /\s/.test(url)
  ) {
    throw new BerthError(
      "INVALID_SETTING",
      `Invalid buildpack ${JSON.stringify(url.slice(0, 80))}: give an http(s) or git URL.`,
      {
        details: { value: url },
      },
    );
  }
  return url;
}

export function findCommand(name: string): CommandDefinition | undefined {
  return (
    commands.find((command) => command.name === name) ??
    commands.find((command) => command.name === ALIASES[name])
  );
}

/** Dokku habits: `apps` lists, `config APP` shows, `ps APP` reports. */
export const ALIASES: Record<string, string> = {
  apps: "apps:list",
  config: "config:show",
  domains: "domains:report",
  ports: "ports:list",
  ps: "ps:report",
  checks: "checks:report",
  buildpacks: "buildpacks:list",
  keys: "keys:list",
  tokens: "tokens:list",
  "ps:restart-all": "ps:restart",
  "releases:list": "releases",
};
