import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import {
  type Artifact,
  BerthError,
  type BuildContext,
  type Builder,
  describeError,
  isBerthError,
  type JsonValue,
  type Output,
  parseProcfile,
  type Source,
  validateAppName,
  validateConfigKey,
} from "@berth/core";
import Docker from "dockerode";
import tar from "tar-fs";
import { type DirectoryPart, type FilePart, packParts } from "./archive.js";
import {
  type BuildpackReference,
  type FetchedBuildpack,
  fetchBuildpack,
  parseBuildpackReference,
  parseBuildpacksFile,
} from "./buildpacks.js";
import { execIn, getArchive, removeContainer } from "./docker.js";
import { type BuildpackRelease, parseReleaseYaml } from "./release-yaml.js";
import { isSlugIgnored, parseSlugIgnore } from "./slug.js";

/** The plugin name, under which an app keeps its buildpack list (`app.plugins["builder-herokuish"].buildpacks`). */
export const PLUGIN_NAME = "builder-herokuish";
export const DEFAULT_STACK_IMAGE = "berth/stack:bookworm";
/** The unprivileged user buildpacks and apps run as (created by the stack image, or by the build if missing). */
export const BUILD_USER_ID = 32767;
/** The port the image's web process listens on unless the scheduler sets another PORT. */
export const DEFAULT_WEB_PORT = 5000;

/** Lifecycle scripts and /start, shipped with the package and copied into every build container. */
export const STACK_FILES_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "stack", "rootfs");

export interface HerokuishBuilderOptions {
  /** A dockerode client; default one on `socketPath`. */
  docker?: Docker;
  /** Docker socket; default `/var/run/docker.sock`. */
  socketPath?: string;
  /** The stack image builds run in; default `berth/stack:bookworm` (see `buildStackImage`). */
  stackImage?: string;
  /** Buildpacks tried by detection, in order (`URL[#ref]` or absolute directories). */
  buildpacks?: string[];
  /** Per-app build caches live in `<cacheDir>/<app>`; default `<dataDir>/cache`. */
  cacheDir?: string;
  /** Fetched buildpacks are kept here, keyed by URL and ref; default `<dataDir>/buildpacks`. */
  buildpackCacheDir?: string;
  /** Base for the defaults above; the plugin passes the platform's data dir. */
  dataDir?: string;
  /** Image repository of an app's images; default `berth/<app>` (tags are `v<version>`). */
  imageRepository?: (app: string) => string;
}

/** Where an app's buildpacks came from, in the order Heroku looks. */
type SelectionOrigin = "app" | "file" | "config" | "detection";

interface Selection {
  origin: SelectionOrigin;
  references: BuildpackReference[];
}

interface DetectResult {
  status: number;
  name: string;
  stderr: string;
}

interface Detected {
  buildpack: FetchedBuildpack;
  /** What bin/detect printed: the framework's name. */
  label: string;
}

/** The result of a claimed build. */
interface BuildOutcome {
  artifact: Artifact;
}

const ORIGIN_TEXT: Record<SelectionOrigin, string> = {
  app: "the app's buildpack list",
  file: ".buildpacks",
  config: "BUILDPACK_URL",
  detection: "detection",
};

/**
 * Builds apps with Heroku buildpacks (v2a): detect, compile and release run in a container of the stack image
 * as an unprivileged user, and the container is committed into `berth/<app>:v<version>` whose `/start <type>`
 * runs a process type.
 */
export class HerokuishBuilder implements Builder {
  readonly name = "herokuish";
  readonly docker: Docker;
  readonly stackImage: string;
  readonly #installed: BuildpackReference[];
  readonly #options: HerokuishBuilderOptions;

  constructor(options: HerokuishBuilderOptions = {}) {
    this.#options = options;
    this.docker = options.docker ?? new Docker({ socketPath: options.socketPath ?? "/var/run/docker.sock" });
    this.stackImage = options.stackImage ?? DEFAULT_STACK_IMAGE;
    this.#installed = (options.buildpacks ?? []).map(parseBuildpackReference);
  }

  /** The installed buildpacks, in detection order. */
  get installedBuildpacks(): string[] {
    return this.#installed.map((reference) => reference.text);
  }

  #dataDir(): string {
    return this.#options.dataDir ?? join(process.env.BERTH_DATA ?? "/var/lib/berth");
  }

  /** The directory holding an app's build cache between builds. */
  cacheDirFor(app: string): string {
    validateAppName(app);
    return join(this.#options.cacheDir ?? join(this.#dataDir(), "cache"), app);
  }

  imageFor(app: string, version: number): string {
    const repository = this.#options.imageRepository?.(app) ?? `berth/${app}`;
    return `${repository}:v${version}`;
  }

  /** True when the source names its buildpacks (`.buildpacks`) or an installed buildpack's bin/detect passes. */
  async detect(source: Source): Promise<boolean> {
    if (await exists(join(source.dir, ".buildpacks"))) return true;
    if (this.#installed.length === 0) return false;
    const fetched = await this.#fetch(this.#installed, undefined, undefined);
    const container = await this.#createContainer("detect", fetched, source, [], undefined);
    try {
      await container.start();
      const results = await this.#begin(container, fetched);
      return results.some((result) => result.status === 0);
    } finally {
      await removeContainer(container);
    }
  }

  /** Builds the source; it was selected, so finding no buildpack is a failure. */
  async build(context: BuildContext): Promise<Artifact> {
    const outcome = await this.#build(context, true);
    if (!outcome) throw new BerthError("BUILD_FAILED", "Unable to select a buildpack.");
    return outcome.artifact;
  }

  /** Builds the source when a buildpack claims it (detection), else returns undefined with nothing left behind. */
  async buildIfClaimed(context: BuildContext): Promise<Artifact | undefined> {
    return (await this.#build(context, false))?.artifact;
  }

  async #selection(context: BuildContext): Promise<Selection> {
    const setting = context.app.plugins[PLUGIN_NAME]?.buildpacks;
    if (setting !== undefined && setting !== null) {
      if (!Array.isArray(setting) || setting.some((entry) => typeof entry !== "string")) {
        throw new BerthError(
          "INVALID_SETTING",
          `The buildpacks setting of ${context.app.name} must be a list of URLs; reset it with buildpacks:set.`,
        );
      }
      if (setting.length > 0) {
        return { origin: "app", references: (setting as string[]).map(parseBuildpackReference) };
      }
    }
    const file = await readFile(join(context.source.dir, ".buildpacks"), "utf8").catch(() => undefined);
    if (file !== undefined) {
      const references = parseBuildpacksFile(file);
      if (references.length > 0) return { origin: "file", references };
    }
    const url = context.config.BUILDPACK_URL;
    if (url?.trim()) return { origin: "config", references: [parseBuildpackReference(url)] };
    return { origin: "detection", references: this.#installed };
  }

  async #fetch(
    references: BuildpackReference[],
    output: Output | undefined,
    signal: AbortSignal | undefined,
  ): Promise<FetchedBuildpack[]> {
    const cacheDir = this.#options.buildpackCacheDir ?? join(this.#dataDir(), "buildpacks");
    const fetched: FetchedBuildpack[] = [];
    for (const reference of references) {
      fetched.push(
        await fetchBuildpack(reference, {
          cacheDir,
          ...(signal ? { signal } : {}),
          onProgress: (line) => output?.detail(line),
        }),
      );
    }
    return fetched;
  }

  async #createContainer(
    purpose: string,
    buildpacks: FetchedBuildpack[],
    source: Source,
    extra: FilePart[],
    cacheDir: string | undefined,
  ): Promise<Docker.Container> {
    const image = await this.docker
      .getImage(this.stackImage)
      .inspect()
      .catch(() => undefined);
    if (!image) {
      throw new BerthError(
        "BUILD_FAILED",
        `Stack image ${this.stackImage} does not exist: build it with buildStackImage() from @berth/builder-herokuish (or scripts/setup-host --stack).`,
        { details: { image: this.stackImage } },
      );
    }
    const ignoreText = await readFile(join(source.dir, ".slugignore"), "utf8").catch(() => "");
    const slugIgnore = parseSlugIgnore(ignoreText);
    const directories: DirectoryPart[] = [
      { from: STACK_FILES_DIR, to: ".", uid: 0 },
      {
        from: source.dir,
        to: "app",
        uid: BUILD_USER_ID,
        // Heroku removes .slugignore'd files before the buildpacks run; .git never reaches a slug.
        ignore: (path, isDirectory) =>
          path === ".git" || path.startsWith(".git/") || isSlugIgnored(slugIgnore, path, isDirectory),
      },
      ...buildpacks.map((buildpack) => ({
        from: buildpack.dir,
        to: containerPath(buildpack, buildpacks).slice(1),
        // Owned by the build user: bin/compile may write its `export` file into the buildpack's root.
        uid: BUILD_USER_ID,
        ignore: (path: string) => path === ".git" || path.startsWith(".git/"),
      })),
    ];
    if (cacheDir && (await exists(cacheDir)))
      directories.push({ from: cacheDir, to: "cache", uid: BUILD_USER_ID });
    const name = `berth-build-${purpose}-${randomBytes(5).toString("hex")}`;
    const container = await this.docker.createContainer({
      name,
      Image: this.stackImage,
      // The build container only idles; every step of the lifecycle is an exec, so the host drives the order.
      Entrypoint: ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
      Cmd: [],
      WorkingDir: "/",
      User: "0:0",
      // /cache is an anonymous volume: the host reads it after the build, and a commit never includes it.
      HostConfig: { AutoRemove: false, Mounts: [{ Type: "volume", Source: "", Target: "/cache" }] },
    });
    try {
      await container.putArchive(packParts(directories, extra) as unknown as NodeJS.ReadableStream, {
        path: "/",
      });
    } catch (error) {
      await removeContainer(container);
      throw error;
    }
    return container;
  }

  #lifecycle(
    container: Docker.Container,
    step: string[],
    options: Parameters<typeof execIn>[2] = {},
  ): ReturnType<typeof execIn> {
    return execIn(container, ["/usr/local/lib/berth/lifecycle", ...step], options);
  }

  async #build(context: BuildContext, required: boolean): Promise<BuildOutcome | undefined> {
    const { output, source, app, version } = context;
    validateAppName(app.name);
    const started = Date.now();
    const selection = await this.#selection(context);
    if (selection.origin === "detection" && selection.references.length === 0) {
      if (!required) return undefined;
      output.step("Unable to select a buildpack");
      output.detail("No buildpacks are installed; set some with buildpacks:set or a .buildpacks file.");
      throw new BerthError(
        "BUILD_FAILED",
        "Unable to select a buildpack: none are installed or named by the app.",
      );
    }
    // Seconds per phase, kept in the artifact's metadata: where a build spends its time.
    const phases: Record<string, number> = {};
    let phaseStarted = Date.now();
    const phase = (name: string) => {
      const now = Date.now();
      phases[name] = Number(((now - phaseStarted) / 1000).toFixed(2));
      phaseStarted = now;
    };
    let buildpacks: FetchedBuildpack[];
    try {
      buildpacks = await this.#fetch(selection.references, output, context.signal);
    } catch (error) {
      // Also for installed buildpacks: one that cannot be fetched or run is the operator's to fix, and says so.
      output.warn(describeError(error));
      throw error;
    }
    phase("fetch");

    const envFiles: FilePart[] = Object.entries(context.config).map(([key, value]) => ({
      to: `tmp/env/${validateConfigKey(key)}`,
      content: value,
      mode: 0o644,
      uid: 0,
    }));
    const cacheDir = this.cacheDirFor(app.name);
    const container = await this.#createContainer(app.name, buildpacks, source, envFiles, cacheDir);
    const onAbort = () => {
      void removeContainer(container);
    };
    context.signal.addEventListener("abort", onAbort, { once: true });
    const incomingCache = `${cacheDir}.incoming-${randomBytes(4).toString("hex")}`;
    // Failures the output already explained are not repeated.
    let reported = false;
    try {
      await container.start();
      phase("container");
      // Detection: over the installed buildpacks, every one is asked so the output can say which matched.
      const detected: Detected[] = [];
      const results = await this.#begin(container, buildpacks);
      phase("detect");
      for (const [index, buildpack] of buildpacks.entries()) {
        const result = results[index] as DetectResult;
        const label = result.name || buildpack.name;
        if (result.status === 0) {
          detected.push({ buildpack, label });
        } else if (selection.origin !== "detection") {
          output.step(`Building ${app.name} with buildpacks on ${this.stackImage}`);
          output.warn(`App not compatible with buildpack: ${buildpack.reference.text}`);
          output.warn(`bin/detect exited with ${result.status}${result.stderr ? `: ${result.stderr}` : ""}`);
          reported = true;
          throw new BerthError(
            "BUILD_FAILED",
            `App not compatible with buildpack ${buildpack.reference.text} (its bin/detect exited with ${result.status}); it was chosen by ${ORIGIN_TEXT[selection.origin]}.`,
            { details: { buildpack: buildpack.reference.text } },
          );
        }
      }
      if (detected.length === 0) {
        if (!required) return undefined;
        output.step("Unable to select a buildpack");
        output.detail(
          `Tried, in order: ${buildpacks.map((buildpack) => buildpack.reference.text).join(", ")}`,
        );
        output.detail(
          "None of their bin/detect scripts claimed this app; name one with buildpacks:set, .buildpacks or BUILDPACK_URL.",
        );
        reported = true;
        throw new BerthError(
          "BUILD_FAILED",
          `Unable to select a buildpack: none of ${buildpacks.map((buildpack) => buildpack.name).join(", ")} detected this app.`,
          { details: { tried: buildpacks.map((buildpack) => buildpack.reference.text) } },
        );
      }
      const chosen = selection.origin === "detection" ? [detected[0] as Detected] : detected;

      output.step(`Building ${app.name} with buildpacks on ${this.stackImage}`);
      if (selection.origin === "detection") {
        if (detected.length > 1) {
          output.step(
            `Detected buildpacks: ${detected.map((entry) => `${entry.label} (${entry.buildpack.name})`).join(", ")}`,
          );
          output.detail(`Using the first in the installed order: ${chosen[0]?.buildpack.reference.text}`);
        }
      }
      if (chosen.length === 1) {
        output.step(`Using buildpack: ${chosen[0]?.buildpack.reference.text}`);
      } else {
        output.step(`Using buildpacks (from ${ORIGIN_TEXT[selection.origin]}):`);
        chosen.forEach((entry, index) => {
          output.detail(`${index + 1}. ${entry.buildpack.reference.text}`);
        });
      }

      const buildEnv = ["HOME=/app", ...(source.rev ? [`SOURCE_VERSION=${source.rev}`] : [])];
      for (const entry of chosen) {
        output.step(`${entry.label} app detected`);
        const forward = new LineForwarder(output);
        const compiled = await this.#lifecycle(
          container,
          ["compile", containerPath(entry.buildpack, buildpacks)],
          {
            env: buildEnv,
            onStdout: (chunk) => forward.write(chunk),
            onStderr: (chunk) => forward.write(chunk),
          },
        );
        forward.flush();
        if (compiled.exitCode !== 0) {
          if (/Permission denied|Read-only file system/i.test(forward.recent())) {
            output.warn(
              "Buildpacks run as an unprivileged user and may write only to BUILD_DIR (/app), CACHE_DIR (/cache) and /tmp.",
            );
          }
          output.warn(`Push rejected, failed to compile ${entry.label} app.`);
          reported = true;
          throw new BerthError(
            "BUILD_FAILED",
            `bin/compile of buildpack ${entry.buildpack.reference.text} exited with ${compiled.exitCode}; see the build output above. The build cache was left as it was.`,
            { details: { buildpack: entry.buildpack.reference.text, exitCode: compiled.exitCode } },
          );
        }
      }

      phase("compile");
      const collected = await this.#collect(container, chosen, buildpacks, buildEnv, output);
      phase("release");
      const releases = collected.releases;

      // Later buildpacks win per key: the last one in a multi-buildpack build describes the app best.
      const defaultProcessTypes: Record<string, string> = Object.assign(
        {},
        ...releases.map((release) => release.defaultProcessTypes),
      );
      const configVars: Record<string, string> = Object.assign(
        {},
        ...releases.map((release) => release.configVars),
      );
      const procfileText = collected.procfile;
      let procfile: Record<string, string> = {};
      try {
        procfile = procfileText === undefined ? {} : parseProcfile(procfileText);
      } catch (error) {
        throw new BerthError("BUILD_FAILED", describeError(error), { cause: error });
      }
      const processTypes = { ...defaultProcessTypes, ...procfile };
      output.step("Discovering process types");
      output.detail(`Procfile declares types     -> ${Object.keys(procfile).join(", ") || "(none)"}`);
      output.detail(
        `Default types for buildpack -> ${Object.keys(defaultProcessTypes).join(", ") || "(none)"}`,
      );
      if (Object.keys(processTypes).length === 0) {
        output.warn(
          "No process types: add a Procfile (web: <command>) or use a buildpack that declares defaults.",
        );
      }

      // Save the cache aside now; it replaces the app's cache only once the image is committed.
      await this.#saveCache(container, incomingCache);
      phase("saveCache");

      const runtimeFiles: FilePart[] = Object.entries(processTypes).map(([type, command]) => ({
        to: `usr/local/lib/berth/process/${type}`,
        content: command,
        mode: 0o644,
        uid: 0,
      }));
      if (Object.keys(configVars).length > 0) {
        runtimeFiles.push({
          to: "app/.profile.d/000-berth-config-vars.sh",
          content: configVarsProfile(configVars),
          mode: 0o644,
          uid: BUILD_USER_ID,
        });
      }
      await container.putArchive(
        packParts(
          [{ from: STACK_FILES_DIR, to: ".", uid: 0 }],
          runtimeFiles,
        ) as unknown as NodeJS.ReadableStream,
        {
          path: "/",
        },
      );

      const image = this.imageFor(app.name, version);
      output.step(`Committing ${image}`);
      const [repository, tag] = splitImage(image);
      const commit = container.commit as unknown as (options: object) => Promise<{ Id?: string }>;
      const committed = await commit.call(container, {
        // The container only idles in a sleep now: pausing it for the commit is enough, no need to stop it.
        _query: { container: container.id, repo: repository, tag, pause: true },
        _body: {
          Entrypoint: [],
          Cmd: ["/start", "web"],
          WorkingDir: "/app",
          User: "0:0",
          Env: ["HOME=/app"],
          ExposedPorts: { [`${DEFAULT_WEB_PORT}/tcp`]: {} },
          Labels: {
            "berth.app": app.name,
            "berth.release": `v${version}`,
            "berth.builder": this.name,
            "berth.stack": this.stackImage,
          },
        },
      });
      phase("commit");
      await this.#replaceCache(incomingCache, cacheDir);
      const seconds = (Date.now() - started) / 1000;
      output.detail(`Built in ${seconds.toFixed(1)}s`);
      const metadata: Record<string, JsonValue> = {
        imageId: committed.Id ?? null,
        stack: this.stackImage,
        buildpacks: chosen.map((entry) => entry.buildpack.reference.text),
        detected: chosen.map((entry) => entry.label),
        selectedBy: selection.origin,
        buildSeconds: Number(seconds.toFixed(2)),
        phases,
      };
      return {
        artifact: {
          builder: this.name,
          image,
          launcher: "start",
          defaultProcessTypes,
          ...(procfileText !== undefined ? { procfile: procfileText } : {}),
          configDefaults: configVars,
          ports: [DEFAULT_WEB_PORT],
          metadata,
        },
      };
    } catch (error) {
      if (!reported) output.warn(describeError(error));
      if (context.signal.aborted) {
        throw new BerthError("BUILD_FAILED", `Build of ${app.name} was cancelled.`, { cause: error });
      }
      if (isBerthError(error)) throw error;
      throw new BerthError("BUILD_FAILED", `Build of ${app.name} failed: ${describeError(error)}`, {
        cause: error,
      });
    } finally {
      context.signal.removeEventListener("abort", onAbort);
      await rm(incomingCache, { recursive: true, force: true });
      await removeContainer(container);
    }
  }

  /** Prepares the container and runs every buildpack's bin/detect, in one exec. */
  async #begin(container: Docker.Container, buildpacks: FetchedBuildpack[]): Promise<DetectResult[]> {
    const result = await this.#lifecycle(
      container,
      ["begin", ...buildpacks.map((buildpack) => containerPath(buildpack, buildpacks))],
      { captureStdout: true, captureStderr: true },
    );
    const lines = result.stdout.split("\n").filter((line) => /^[0-9]+\t/.test(line));
    if (result.exitCode !== 0 || lines.length !== buildpacks.length) {
      throw new BerthError(
        "BUILD_FAILED",
        `Could not prepare the build container (exit ${result.exitCode}): ${result.stderr.trim().slice(-500)}`,
      );
    }
    return lines.map((line) => {
      const tab = line.indexOf("\t");
      return {
        status: Number(line.slice(0, tab)),
        name: line.slice(tab + 1).trim(),
        stderr: result.stderr.trim(),
      };
    });
  }

  /**
   * Runs bin/release of the chosen buildpacks and reads the Procfile, in one exec that also removes the
   * build-only files (buildpacks, ENV_DIR, temporary files) before the commit.
   */
  async #collect(
    container: Docker.Container,
    chosen: Detected[],
    buildpacks: FetchedBuildpack[],
    env: string[],
    output: Output,
  ): Promise<{ releases: BuildpackRelease[]; procfile: string | undefined }> {
    const mark = `@@berth-${randomBytes(8).toString("hex")}`;
    const result = await this.#lifecycle(
      container,
      ["collect", mark, ...chosen.map((entry) => containerPath(entry.buildpack, buildpacks))],
      { env, captureStdout: true, onStderr: (chunk) => output.stream(chunk) },
    );
    output.flush();
    if (result.exitCode !== 0) {
      throw new BerthError(
        "BUILD_FAILED",
        `Could not read the buildpacks' releases (exit ${result.exitCode}).`,
      );
    }
    const sections: Array<{ kind: string; status: number; lines: string[] }> = [];
    for (const line of result.stdout.split("\n")) {
      if (line.startsWith(`${mark} `)) {
        const [, kind = "", status = "0"] = line.split(" ");
        sections.push({ kind, status: Number(status), lines: [] });
      } else {
        sections.at(-1)?.lines.push(line);
      }
    }
    const releases: BuildpackRelease[] = [];
    const releaseSections = sections.filter((section) => section.kind === "release");
    for (const [index, entry] of chosen.entries()) {
      const section = releaseSections[index];
      if (section?.status !== 0) {
        throw new BerthError(
          "BUILD_FAILED",
          `bin/release of buildpack ${entry.buildpack.reference.text} exited with ${section?.status ?? "no result"}.`,
          { details: { buildpack: entry.buildpack.reference.text } },
        );
      }
      releases.push(parseReleaseYaml(section.lines.join("\n"), entry.buildpack.reference.text));
    }
    const procfile = sections.find((section) => section.kind === "procfile");
    return {
      releases,
      procfile: procfile ? `${procfile.lines.join("\n").replace(/\n+$/, "")}\n` : undefined,
    };
  }

  async #saveCache(container: Docker.Container, into: string): Promise<void> {
    await rm(into, { recursive: true, force: true });
    await mkdir(into, { recursive: true });
    const archive = await getArchive(container, "/cache");
    await pipeline(
      archive,
      tar.extract(into, {
        // Entries arrive as cache/...; the app's cache directory is their root.
        map: (header) => {
          header.name = header.name.replace(/^cache\/?/, "") || ".";
          return header;
        },
      }),
    );
  }

  async #replaceCache(incoming: string, cacheDir: string): Promise<void> {
    await mkdir(dirname(cacheDir), { recursive: true });
    const retired = `${cacheDir}.retired-${randomBytes(4).toString("hex")}`;
    const hadCache = await exists(cacheDir);
    if (hadCache) await rename(cacheDir, retired);
    await rename(incoming, cacheDir);
    if (hadCache) await rm(retired, { recursive: true, force: true });
  }
}

/** Where a buildpack lives in the build container: /tmp/buildpacks/<n>-<name>. */
function containerPath(buildpack: FetchedBuildpack, all: FetchedBuildpack[]): string {
  return `/tmp/buildpacks/${all.indexOf(buildpack) + 1}-${buildpack.name}`;
}

function splitImage(image: string): [string, string] {
  const colon = image.lastIndexOf(":");
  if (colon <= image.lastIndexOf("/")) return [image, "latest"];
  return [image.slice(0, colon), image.slice(colon + 1)];
}

/** Buildpack config_vars as defaults: a value the environment already has (the app's config) wins. */
function configVarsProfile(configVars: Record<string, string>): string {
  const lines = Object.entries(configVars).map(([key, value]) => {
    validateConfigKey(key);
    return `if [ -z "\${${key}+set}" ]; then export ${key}=${shellQuote(value)}; fi`;
  });
  return `# Written by Berth: the buildpacks' config_vars, used where the app's config does not set them.\n${lines.join("\n")}\n`;
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Buildpack output to Heroku-style lines: `-----> ` headings stay headings, ` !     ` warnings stay warnings,
 * everything else becomes 7-space detail (already-indented lines keep their indentation).
 */
class LineForwarder {
  #partial = "";
  readonly #recent: string[] = [];
  constructor(private readonly output: Output) {}

  /** The last lines seen, to explain a failure. */
  recent(): string {
    return this.#recent.join("\n");
  }

  write(chunk: string): void {
    const text = this.#partial + chunk;
    const lines = text.split(/\r?\n/);
    this.#partial = lines.pop() ?? "";
    for (const line of lines) this.#line(line);
  }

  flush(): void {
    if (this.#partial) this.#line(this.#partial);
    this.#partial = "";
  }

  #line(line: string): void {
    this.#recent.push(line);
    if (this.#recent.length > 30) this.#recent.shift();
    if (line.startsWith("-----> ")) this.output.step(line.slice(7));
    else if (line.startsWith(" !     ")) this.output.warn(line.slice(7));
    else if (line.startsWith("       ")) this.output.detail(line.slice(7));
    else this.output.detail(line);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
