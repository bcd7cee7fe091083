import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type AppSettings,
  type Artifact,
  collectOutput,
  isBerthError,
  type JsonValue,
  Output,
  Platform,
  type Release,
} from "@berth/core";
import { temporaryDirectory } from "@berth/core/testing";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerfileBuilderPlugin } from "./index.js";

const docker = new Docker();
const run = `${process.pid % 100000}`;
/** Every app of this file: its images are removed afterwards, whatever a test left. */
const appsUsed = new Set<string>();
const directories: string[] = [];

function appName(purpose: string): string {
  const name = `bdf-${run}-${purpose}`;
  appsUsed.add(name);
  return name;
}

/** A source directory from files (nested paths allowed) and symlinks. */
async function writeSource(
  files: Record<string, string>,
  links: Record<string, string> = {},
): Promise<string> {
  const dir = await temporaryDirectory("berth-bdf-source-");
  directories.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  for (const [name, target] of Object.entries(links)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await symlink(target, join(dir, name));
  }
  return dir;
}

let dataDir: string;
let platform: Platform;
let plugin: DockerfileBuilderPlugin;

function settingsFor(
  app: string,
  builderSettings?: Record<string, JsonValue>,
  builder?: string,
): AppSettings {
  return {
    name: app,
    createdAt: new Date().toISOString(),
    ...(builder ? { builder } : {}),
    domains: [],
    ports: [],
    scale: {},
    checks: { disabled: [], skipped: [] },
    plugins: builderSettings ? { "builder-dockerfile": builderSettings } : {},
  };
}

interface BuildRequest {
  app: string;
  dir: string;
  version?: number;
  settings?: Record<string, JsonValue>;
  builder?: string;
  config?: Record<string, string>;
  rev?: string;
}

/** Runs the platform's `build` hook the way the pipeline does; returns the artifact (or the error) and the output. */
async function build(request: BuildRequest): Promise<{ artifact?: Artifact; error?: unknown; text: string }> {
  const { output, text } = collectOutput();
  try {
    const artifact = await platform.hooks.build.promise({
      platform,
      app: settingsFor(request.app, request.settings, request.builder),
      output,
      signal: new AbortController().signal,
      source: { kind: "dir", dir: request.dir, ...(request.rev ? { rev: request.rev } : {}) },
      version: request.version ?? 1,
      builder: request.builder,
      config: request.config ?? {},
    });
    return { ...(artifact ? { artifact } : {}), text: text() };
  } catch (error) {
    return { error, text: text() };
  }
}

function release(app: string, version: number, image: string): Release {
  return {
    app,
    version,
    id: `v${version}`,
    status: "succeeded",
    createdAt: new Date().toISOString(),
    description: "test",
    artifact: { builder: "dockerfile", image },
    config: {},
    processTypes: {},
    appJson: {},
    source: { kind: "dir" },
  };
}

async function imageExists(reference: string): Promise<boolean> {
  return docker
    .getImage(reference)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

beforeAll(async () => {
  dataDir = await temporaryDirectory("berth-bdf-data-");
  platform = new Platform({ dataDir, defaults: { scheduler: "fake" } });
  plugin = new DockerfileBuilderPlugin({ docker });
  platform.use(plugin);
});

afterAll(async () => {
  for (const app of appsUsed) await plugin.builder.removeAppImages(app);
  for (const dir of [...directories, dataDir]) await rm(dir, { recursive: true, force: true });
});

describe("DockerfileBuilder on the Docker engine", () => {
  it("tags berth/<app>:v<version> and labels the image with app, release and rev", async () => {
    const app = appName("labels");
    const dir = await writeSource({ Dockerfile: 'FROM berth/busybox:latest\nCMD ["sleep", "60"]\n' });
    const { artifact, error, text } = await build({ app, dir, version: 7, rev: "0123456789abcdef" });
    expect(error).toBeUndefined();
    expect(artifact?.image).toBe(`berth/${app}:v7`);
    expect(text).toMatch(new RegExp(`^-----> Building ${app} from Dockerfile$`, "m"));
    expect(text).toMatch(/^ {7}Step 1\/\d+ : FROM berth\/busybox:latest$/m);
    const image = await docker.getImage(`berth/${app}:v7`).inspect();
    expect(image.RepoTags).toContain(`berth/${app}:v7`);
    expect(image.Config.Labels).toMatchObject({
      "berth.app": app,
      "berth.release": "v7",
      "berth.rev": "0123456789abcdef",
    });
    expect(artifact?.metadata?.imageId).toBe(image.Id);
    expect(artifact?.metadata?.rev).toBe("0123456789abcdef");
  });

  it("turns EXPOSE into the artifact's ports, TCP only, in the order the Dockerfile declares them", async () => {
    const app = appName("ports");
    const dir = await writeSource({
      Dockerfile: "FROM berth/busybox:latest\nEXPOSE 8080\nEXPOSE 80 9000/udp 5000/tcp\n",
    });
    const { artifact, error } = await build({ app, dir });
    expect(error).toBeUndefined();
    // The engine reports exposed ports as an alphabetical map ("5000/tcp", "80/tcp", "8080/tcp"); the
    // Dockerfile's order is what makes 8080 the web port.
    expect(artifact?.ports).toEqual([8080, 80, 5000]);
    // Even where the engine sorts the words of one EXPOSE, the Dockerfile order wins.
    expect(artifact?.metadata?.imageId).toBeTruthy();
  });

  it("makes CMD the default web process, run by the image itself", async () => {
    const app = appName("cmd");
    const shellForm = await writeSource({ Dockerfile: "FROM berth/busybox:latest\nCMD httpd -f -p $PORT\n" });
    const shell = await build({ app, dir: shellForm, version: 1 });
    expect(shell.artifact).toMatchObject({
      defaultProcessTypes: { web: "httpd -f -p $PORT" },
      imageDefaultProcess: "web",
      launcher: "shell",
    });

    const execForm = await writeSource({
      Dockerfile: 'FROM berth/busybox:latest\nENTRYPOINT ["echo"]\nCMD ["hello world", "it\'s"]\n',
    });
    const exec = await build({ app, dir: execForm, version: 2 });
    expect(exec.artifact?.defaultProcessTypes).toEqual({ web: `echo 'hello world' 'it'\\''s'` });

    const none = await writeSource({ Dockerfile: "FROM berth/busybox:latest\nCMD []\n" });
    const withoutCommand = await build({ app, dir: none, version: 3 });
    expect(withoutCommand.error).toBeUndefined();
    expect(withoutCommand.artifact?.defaultProcessTypes).toBeUndefined();
    expect(withoutCommand.artifact?.imageDefaultProcess).toBeUndefined();
  });

  it("passes only the config vars the app opted into as build args", async () => {
    const app = appName("args");
    const dir = await writeSource({
      Dockerfile:
        "FROM berth/busybox:latest\nARG PUBLIC_NAME\nARG SECRET_TOKEN\n" +
        'RUN echo "public=[$PUBLIC_NAME] secret=[$SECRET_TOKEN]"\n',
    });
    const { artifact, error, text } = await build({
      app,
      dir,
      settings: { buildArgs: ["PUBLIC_NAME", "UNSET_NAME"] },
      config: { PUBLIC_NAME: "visible-value", SECRET_TOKEN: "hidden-value" },
    });
    expect(error).toBeUndefined();
    expect(text).toContain("public=[visible-value] secret=[]");
    expect(text).not.toContain("hidden-value");
    expect(text).toContain("Build args: PUBLIC_NAME");
    expect(text).toContain("Build arg UNSET_NAME is not set");
    const history = await docker.getImage(artifact?.image ?? "").history();
    expect(JSON.stringify(history)).not.toContain("hidden-value");
  });

  it("refuses build args that are not config var names", async () => {
    const dir = await writeSource({ Dockerfile: "FROM berth/busybox:latest\n" });
    const { error } = await build({ app: appName("badargs"), dir, settings: { buildArgs: ["A; rm -rf /"] } });
    expect(isBerthError(error, "INVALID_CONFIG_KEY")).toBe(true);
  });

  it("leaves files listed in .dockerignore out of the image, and keeps symlinks inside the source", async () => {
    const app = appName("ignore");
    const dir = await writeSource(
      {
        Dockerfile:
          "FROM berth/busybox:latest\nCOPY . /app\n" +
          "RUN test ! -e /app/secret.env && test ! -e /app/logs/debug.log && test -e /app/logs/keep.log " +
          "&& test -e /app/kept.txt && test ! -e /app/leak && test -L /app/kept-link && cat /app/kept-link && echo context-ok\n",
        ".dockerignore": "secret.env\nlogs\n!logs/keep.log\nleak\n",
        "secret.env": "TOKEN=do-not-ship\n",
        "kept.txt": "kept-content\n",
        "logs/debug.log": "noise\n",
        "logs/keep.log": "wanted\n",
      },
      // Outside, but ignored: never sent, so allowed.
      { "kept-link": "kept.txt", leak: "/etc/passwd" },
    );
    const { error, text } = await build({ app, dir });
    expect(error).toBeUndefined();
    expect(text).toContain("kept-content");
    expect(text).toContain("context-ok");
  });

  it("reuses the layer cache when nothing changed", async () => {
    const app = appName("cache");
    const files = {
      Dockerfile:
        "FROM berth/busybox:latest\nCOPY marker.txt /marker.txt\nRUN echo layer-built-$(cat /marker.txt)\n",
      "marker.txt": `cache ${run}-${Date.now()}\n`,
    };
    const first = await build({ app, dir: await writeSource(files), version: 1 });
    expect(first.error).toBeUndefined();
    // A fresh checkout of the same files (new mtimes) still hits the cache.
    const second = await build({ app, dir: await writeSource(files), version: 2 });
    expect(second.error).toBeUndefined();
    expect(second.text).toContain("Using cache");
    expect(first.text).toContain(files["marker.txt"].trim());
    expect(second.text).not.toContain(files["marker.txt"].trim());
    expect(second.artifact?.metadata?.cached).toBe(true);
  });

  it("fails a broken step with BUILD_FAILED, its output, and leaves no container or image behind", async () => {
    const app = appName("failing");
    const marker = `bdf-${run}-failing-${Date.now()}`;
    const dir = await writeSource({
      Dockerfile:
        `FROM berth/busybox:latest\nLABEL berth.test.build=${marker}\nRUN echo step-one-done\n` +
        "RUN echo output-of-the-failing-step && exit 3\nCMD sh\n",
    });
    const { error, text } = await build({ app, dir });
    expect(isBerthError(error, "BUILD_FAILED")).toBe(true);
    expect((error as Error).message).toContain("RUN echo output-of-the-failing-step && exit 3");
    expect((error as Error).message).toContain("returned a non-zero code: 3");
    expect(text).toContain("output-of-the-failing-step");
    const lines = text.trimEnd().split("\n");
    expect(lines[lines.length - 1]).toMatch(/^ ! {5}.*returned a non-zero code: 3/);
    // The LABEL and first RUN steps committed images and every step ran in a container carrying the label.
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`berth.test.build=${marker}`] },
    });
    expect(containers).toEqual([]);
    const images = await docker.listImages({ all: true, filters: { label: [`berth.test.build=${marker}`] } });
    expect(images).toEqual([]);
    expect(await imageExists(`berth/${app}:v1`)).toBe(false);
  });

  it("stops a build when its signal aborts, leaving no container or image behind", async () => {
    const app = appName("abort");
    const marker = `bdf-${run}-abort-${Date.now()}`;
    const dir = await writeSource({
      Dockerfile: `FROM berth/busybox:latest\nLABEL berth.test.build=${marker}\nRUN echo sleep-started && sleep 60\n`,
    });
    const controller = new AbortController();
    let seen = "";
    const output = new Output((text) => {
      seen += text;
      // Abort once the long step really runs inside its container.
      if (/^ {7}sleep-started$/m.test(seen)) controller.abort();
    });
    const started = Date.now();
    const error = await plugin.builder
      .build({
        platform,
        app: settingsFor(app),
        output,
        signal: controller.signal,
        source: { kind: "dir", dir },
        version: 1,
        builder: "dockerfile",
        config: {},
      })
      .catch((caught: unknown) => caught);
    expect(isBerthError(error, "BUILD_FAILED")).toBe(true);
    expect((error as Error).message).toContain("cancelled");
    expect(Date.now() - started).toBeLessThan(30_000);
    // The engine removes the step's container as it notices the closed connection: poll, with a deadline.
    const deadline = Date.now() + 30_000;
    let leftovers: unknown[] = [];
    do {
      leftovers = [
        ...(await docker.listContainers({ all: true, filters: { label: [`berth.test.build=${marker}`] } })),
        ...(await docker.listImages({ all: true, filters: { label: [`berth.test.build=${marker}`] } })),
      ];
      if (leftovers.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    } while (Date.now() < deadline);
    expect(leftovers).toEqual([]);
  });

  it("fails a Dockerfile whose base image is not on the engine with BUILD_FAILED, before any pull", async () => {
    const dir = await writeSource({ Dockerfile: "FROM berth/no-such-base-image:latest\n" });
    const { error, text } = await build({ app: appName("nobase"), dir });
    expect(isBerthError(error, "BUILD_FAILED")).toBe(true);
    expect((error as Error).message).toContain("The base image berth/no-such-base-image:latest");
    // Refused before the build started, so the engine never looked for a registry.
    expect(text).not.toContain("Step 1/");
  });

  it("refuses a symlink pointing outside the source before contacting the engine", async () => {
    const outside = await writeSource({ "host-secret.txt": "host secret\n" });
    const files = { Dockerfile: "FROM berth/busybox:latest\nCOPY . /app\n" };
    for (const target of ["/etc/passwd", join(outside, "host-secret.txt"), "../../../etc"]) {
      const dir = await writeSource(files, { "deep/link": target });
      const { error } = await build({ app: appName("symlink"), dir });
      expect(isBerthError(error, "INVALID_SOURCE")).toBe(true);
      expect((error as Error).message).toContain("deep/link");
    }
    // The same through a client that cannot reach any engine: still INVALID_SOURCE, so nothing was sent.
    const unreachable = new DockerfileBuilderPlugin({ socketPath: join(dataDir, "no-engine.sock") });
    const { output } = collectOutput();
    const dir = await writeSource(files, { link: "/etc/passwd" });
    const refusal = await unreachable.builder
      .build({
        platform,
        app: settingsFor(appName("symlink")),
        output,
        signal: new AbortController().signal,
        source: { kind: "dir", dir },
        version: 1,
        builder: "dockerfile",
        config: {},
      })
      .catch((error: unknown) => error);
    expect(isBerthError(refusal, "INVALID_SOURCE")).toBe(true);
    // A Dockerfile that is itself a link out of the source is refused too.
    const linkedDockerfile = await writeSource({}, { Dockerfile: join(outside, "host-secret.txt") });
    const dockerfileLink = await build({ app: appName("symlink"), dir: linkedDockerfile });
    expect(isBerthError(dockerfileLink.error, "INVALID_SOURCE")).toBe(true);
  });

  it("finds the Dockerfile at the app's dockerfilePath, with the source root as context", async () => {
    const app = appName("path");
    const dir = await writeSource({
      "services/web/Dockerfile":
        "FROM berth/busybox:latest\nCOPY services/web/index.html /www/index.html\nRUN cat /www/index.html\n",
      "services/web/index.html": "monorepo-web-page\n",
    });
    const unclaimed = await build({ app, dir });
    expect(unclaimed.error).toBeUndefined();
    expect(unclaimed.artifact).toBeUndefined();
    const { artifact, error, text } = await build({
      app,
      dir,
      settings: { dockerfilePath: "services/web/Dockerfile" },
    });
    expect(error).toBeUndefined();
    expect(artifact?.builder).toBe("dockerfile");
    expect(artifact?.metadata?.dockerfile).toBe("services/web/Dockerfile");
    expect(text).toContain("monorepo-web-page");
  });

  it("refuses a dockerfilePath that leaves the source", async () => {
    const dir = await writeSource({ Dockerfile: "FROM berth/busybox:latest\n" });
    for (const hostile of [
      "../x",
      "/etc/passwd",
      "services/../../x",
      "./Dockerfile",
      "a//b",
      "a\\..\\b",
      7,
    ]) {
      for (const builder of [undefined, "dockerfile"]) {
        const { error } = await build({
          app: appName("hostile"),
          dir,
          settings: { dockerfilePath: hostile },
          ...(builder ? { builder } : {}),
        });
        expect(isBerthError(error, "INVALID_SETTING"), `${String(hostile)} with builder ${builder}`).toBe(
          true,
        );
      }
    }
  });

  it("answers only when selected, or unselected with a Dockerfile", async () => {
    const app = appName("select");
    const withDockerfile = await writeSource({ Dockerfile: "FROM berth/busybox:latest\n" });
    const other = await build({ app, dir: withDockerfile, builder: "herokuish" });
    expect(other.artifact).toBeUndefined();
    expect(other.error).toBeUndefined();
    const withoutDockerfile = await writeSource({ "index.html": "hi\n" });
    const selected = await build({ app, dir: withoutDockerfile, builder: "dockerfile" });
    expect(isBerthError(selected.error, "INVALID_SOURCE")).toBe(true);
    expect((selected.error as Error).message).toContain("No Dockerfile at Dockerfile");
  });

  it("prunes images no kept release uses, keeps those a container uses, and removes all on destroy", async () => {
    const app = appName("prune");
    const dir = await writeSource({ Dockerfile: 'FROM berth/busybox:latest\nCMD ["sleep", "60"]\n' });
    for (const version of [1, 2, 3, 4]) {
      const { error } = await build({ app, dir, version });
      expect(error).toBeUndefined();
    }
    const tag = (version: number) => `berth/${app}:v${version}`;
    const container = await docker.createContainer({
      Image: tag(3),
      name: `berth-test-bdf-${run}-prune`,
      Labels: { "berth.test": `bdf-${run}` },
    });
    try {
      await platform.apps.create(app);
      const settings = await platform.apps.get(app);
      // v5 is a rollback to v2: its artifact is v2's image, which must survive.
      await platform.hooks.pruneReleases.promise({
        app: settings,
        keep: [release(app, 4, tag(4)), release(app, 5, tag(2))],
        prune: [release(app, 1, tag(1)), release(app, 2, tag(2)), release(app, 3, tag(3))],
      });
      expect(await imageExists(tag(1))).toBe(false);
      expect(await imageExists(tag(2))).toBe(true);
      expect(await imageExists(tag(3))).toBe(true);
      expect(await imageExists(tag(4))).toBe(true);
    } finally {
      await container.remove({ force: true });
    }
    await platform.apps.destroy(app);
    const left = await docker.listImages({ filters: { label: [`berth.app=${app}`] } });
    expect(left).toEqual([]);
  });
});
