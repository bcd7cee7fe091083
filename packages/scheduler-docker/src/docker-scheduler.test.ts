import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";
import {
  type Artifact,
  collectOutput,
  isBerthError,
  type LogLine,
  Platform,
  type Release,
} from "@berth/core";
import { StaticArtifactBuilderPlugin, sourceFrom, temporaryDirectory } from "@berth/core/testing";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS, networkName, SHARED_NETWORK } from "./docker-scheduler.js";
import { DockerSchedulerPlugin } from "./plugin.js";
import { buildImage, commands, removeImage, testImageDockerfile } from "./test-support/images.js";

const run = promisify(execFile);
const docker = new Docker();
const tag = process.pid.toString(36);
const image = `berth-test-scheduler-docker:${tag}`;
const app = `sd-${tag}`;
const volume = `berth-test-sd-${tag}-data`;
const web = `echo web-started; ${commands.web}`;
const worker = "echo worker-started; while true; do echo tick; sleep 0.3; done";

let dataDir: string;
let platform: Platform;
let plugin: DockerSchedulerPlugin;
let artifact: Artifact = { builder: "test", image };
/** What the test's `instanceSpec` tap does: add env and a label, or try to turn web.1 into web.9. */
let tapMode: "add" | "forge" = "add";

async function deploy(name: string, files: Record<string, string>) {
  const source = await sourceFrom(files);
  try {
    return await platform.deploy(name, source);
  } finally {
    await rm(source.dir, { recursive: true, force: true });
  }
}

async function containersOf(name: string) {
  return docker.listContainers({ all: true, filters: { label: [`${LABELS.app}=${name}`] } });
}

async function get(endpoint: { host: string; port: number } | undefined) {
  const response = await fetch(`http://${endpoint?.host}:${endpoint?.port}/`);
  return { status: response.status, body: await response.text() };
}

async function poll<T>(what: string, attempt: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const value = await attempt().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

beforeAll(async () => {
  await buildImage(image, testImageDockerfile);
  dataDir = await temporaryDirectory();
  plugin = new DockerSchedulerPlugin({ stopGracePeriodSeconds: 2 });
  platform = new Platform({ dataDir, checks: { uptime: 1 }, keepReleases: 2 });
  platform.use(new StaticArtifactBuilderPlugin(() => artifact)).use(plugin);
  platform.hooks.instanceSpec.tap("test", (spec) =>
    tapMode === "forge"
      ? { ...spec, index: 9 }
      : {
          ...spec,
          env: { ...spec.env, FROM_TAP: "yes" },
          labels: { ...spec.labels, "example.tap": "yes", [LABELS.app]: "forged" },
        },
  );
  await platform.apps.create(app);
  await platform.config.set(app, { BODY: "hello", SECRET: "s3cr3t" }, { restart: false });
  await platform.ps.scale(app, { web: 1, worker: 1 });
});

afterAll(async () => {
  for (const name of await platform.apps.list()) await platform.apps.destroy(name);
  await rm(dataDir, { recursive: true, force: true });
  await removeImage(image);
  await run("docker", ["volume", "rm", "-f", volume]).catch(() => undefined);
});

describe("DockerScheduler on a real engine", () => {
  it("refuses a memory limit of -1 before anything starts", async () => {
    await platform.apps.setPluginSettings(app, "scheduler-docker", { limits: { web: { memory: -1 } } });
    const failure = await deploy(app, { Procfile: `web: ${web}\nworker: ${worker}` }).catch((error) => error);
    expect(isBerthError(failure, "INVALID_SETTING")).toBe(true);
    expect(failure.message).toMatch(/memory limit -1 for web/);
    expect(await containersOf(app)).toEqual([]);
    expect((await platform.releases.list(app)).at(-1)?.status).toBe("failed");
  });

  it("starts labelled, named, limited instances with PORT, DYNO, --init, a volume and the app's network", async () => {
    await platform.apps.setPluginSettings(app, "scheduler-docker", {
      limits: { _all_: { memory: "64m" }, web: { cpus: 0.5 } },
      volumes: [`${volume}:/data`],
      restartPolicy: "on-failure:3",
      isolatedNetwork: true,
    });
    const release = await deploy(app, { Procfile: `web: ${web}\nworker: ${worker}` });
    const state = await platform.apps.state(app);
    const deploymentId = state.deployment?.id ?? "";
    const status = await platform.ps.status(app);
    expect(status.map((instance) => `${instance.processType}.${instance.index}`)).toEqual([
      "web.1",
      "worker.1",
    ]);
    const [webInstance, workerInstance] = status;
    expect(webInstance?.endpoint?.host).toBe("127.0.0.1");
    expect(webInstance?.containerPort).toBe(5000);
    expect(workerInstance?.endpoint).toBeUndefined();
    expect(await get(webInstance?.endpoint)).toEqual({ status: 200, body: "hello" });

    const info = await docker.getContainer(webInstance?.id ?? "").inspect();
    expect(info.Name).toBe(`/${app}.web.1.${deploymentId}`);
    expect(info.Config.Labels).toMatchObject({
      [LABELS.app]: app,
      [LABELS.release]: release.id,
      [LABELS.deployment]: deploymentId,
      [LABELS.processType]: "web",
      [LABELS.index]: "1",
    });
    expect(info.Config.Env).toEqual(
      expect.arrayContaining(["PORT=5000", "DYNO=web.1", "BODY=hello", "FROM_TAP=yes"]),
    );
    expect(info.Config.Labels?.["example.tap"]).toBe("yes");
    expect(info.Config.Cmd).toEqual(["/bin/sh", "-c", web]);
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.RestartPolicy).toEqual({ Name: "on-failure", MaximumRetryCount: 3 });
    expect(info.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.NetworkMode).toBe(networkName(app, true));
    expect(info.HostConfig.PortBindings).toEqual({ "5000/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] });
    expect(info.Mounts.map((mount) => [mount.Name, mount.Destination])).toEqual([[volume, "/data"]]);

    const workerInfo = await docker.getContainer(workerInstance?.id ?? "").inspect();
    expect(workerInfo.Config.Env).toEqual(expect.arrayContaining(["DYNO=worker.1"]));
    expect(workerInfo.HostConfig.PortBindings ?? {}).toEqual({});
    expect(workerInfo.HostConfig.NanoCpus ?? 0).toBe(0);
  });

  it("refuses an instanceSpec tap that changes which instance it is", async () => {
    const before = (await platform.ps.status(app)).map((instance) => instance.id);
    tapMode = "forge";
    try {
      const failure = await deploy(app, { Procfile: `web: ${web}\nworker: ${worker}` }).catch(
        (error) => error,
      );
      expect(isBerthError(failure, "INVALID_RELEASE")).toBe(true);
    } finally {
      tapMode = "add";
    }
    expect((await platform.ps.status(app)).map((instance) => instance.id)).toEqual(before);
  });

  it("returns logs of every instance, per process type, tailed and followed", async () => {
    const lines: LogLine[] = [];
    await poll("worker ticks", async () => {
      lines.length = 0;
      await platform.logs(app, {}, (line) => lines.push(line));
      return lines.some((line) => line.line === "tick") ? true : undefined;
    });
    expect(lines).toContainEqual(expect.objectContaining({ source: "web.1", line: "web-started" }));
    expect(lines).toContainEqual(expect.objectContaining({ source: "worker.1", line: "worker-started" }));
    expect(lines.every((line) => line.time !== undefined)).toBe(true);

    const webOnly: LogLine[] = [];
    await platform.logs(app, { processType: "web" }, (line) => webOnly.push(line));
    expect(webOnly.map((line) => line.source)).toEqual(["web.1"]);

    const tailed: LogLine[] = [];
    await platform.logs(app, { processType: "worker", tail: 1 }, (line) => tailed.push(line));
    expect(tailed).toHaveLength(1);

    const controller = new AbortController();
    const followed: LogLine[] = [];
    const following = platform.logs(
      app,
      { processType: "worker", tail: 0, follow: true, signal: controller.signal },
      (line) => {
        followed.push(line);
        if (followed.length >= 2) controller.abort();
      },
    );
    await following;
    expect(followed.slice(0, 2).map((line) => `${line.source} ${line.line}`)).toEqual([
      "worker.1 tick",
      "worker.1 tick",
    ]);
  });

  it("runs one-off commands with the release's config, stdin and a timeout, and removes them", async () => {
    const { output, text } = collectOutput();
    const result = await platform.run(app, 'echo "$DYNO $BODY $EXTRA"; echo to-stderr >&2', {
      env: { EXTRA: "more" },
      onOutput: (chunk) => output.stream(chunk),
    });
    output.flush();
    expect(result.exitCode).toBe(0);
    expect(text()).toContain("run.1 hello more");
    expect(text()).toContain("to-stderr");

    const { Readable } = await import("node:stream");
    let echoed = "";
    const piped = await platform.run(app, "tr a-z A-Z", {
      stdin: Readable.from([Buffer.from("from stdin\n")]),
      onOutput: (chunk) => {
        echoed += chunk;
      },
    });
    expect(piped.exitCode).toBe(0);
    expect(echoed).toBe("FROM STDIN\n");

    const started = Date.now();
    const timedOut = await platform.run(app, "sleep 30", { timeoutMs: 500 }).catch((error) => error);
    expect(isBerthError(timedOut, "RUN_TIMEOUT")).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
    const oneOffs = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.app}=${app}`, LABELS.oneOff] },
    });
    expect(oneOffs).toEqual([]);
  });

  it("executes check commands inside an instance and reports exit code and output", async () => {
    const [webInstance] = await platform.ps.status(app);
    const scheduler = plugin.scheduler;
    expect(await scheduler.exec(app, webInstance!, ["sh", "-c", "echo checked $DYNO; exit 4"])).toEqual({
      exitCode: 4,
      output: "checked web.1\n",
    });
    expect(await scheduler.exec(app, webInstance!, ["true"])).toEqual({ exitCode: 0, output: "" });
    await expect(scheduler.exec("someone-else", webInstance!, ["true"])).rejects.toMatchObject({
      code: "SCHEDULER_FAILED",
    });
    expect(await scheduler.instanceState("someone-else", webInstance!)).toEqual({
      running: false,
      restarts: 0,
    });
  });

  it("brings a killed web instance back through the restart policy", async () => {
    const [before] = await platform.ps.status(app);
    const controller = new AbortController();
    const followed: string[] = [];
    const following = platform.logs(
      app,
      { processType: "web", tail: 1, follow: true, signal: controller.signal },
      (line) => {
        followed.push(`${line.source} ${line.line}`);
        if (followed.length === 2) controller.abort();
      },
    );
    // The last line so far arrives once following is set up; only then does the process crash.
    await poll("following the logs", async () => (followed.length > 0 ? true : undefined));
    // A crash, not `docker kill` (which the engine counts as a manual stop): the process dies with SIGKILL,
    // exits non-zero, and on-failure restarts it; its engine-assigned port may change.
    await run("docker", ["exec", before?.id ?? "", "sh", "-c", "kill -9 $(pidof httpd)"]);
    const after = await poll("web.1 restarted", async () => {
      const [instance] = await platform.ps.status(app);
      return instance?.running && instance.restarts >= 1 ? instance : undefined;
    });
    expect(after.id).toBe(before?.id);
    expect(await poll("web.1 answering", () => get(after.endpoint))).toEqual({ status: 200, body: "hello" });
    // Following logs carries on across the restart, without repeating what came before it.
    await poll("the restarted instance's first line", async () =>
      controller.signal.aborted ? true : undefined,
    );
    await following;
    expect(followed).toEqual(["web.1 web-started", "web.1 web-started"]);
  });

  it("commits a predeploy script into the release image without baking the config into it", async () => {
    const release = (await platform.releases.current(app)) as Release;
    let streamed = "";
    const committed = await plugin.scheduler.commit(
      app,
      release,
      'echo "made by $DYNO" > /predeploy.txt && echo predeploy-ran',
      { onOutput: (chunk) => (streamed += chunk) },
    );
    expect(streamed).toContain("predeploy-ran");
    expect(committed.image).toBe(`${image.split(":")[0]}:${release.id}-predeploy`);
    const info = await docker.getImage(committed.image).inspect();
    const original = await docker.getImage(image).inspect();
    expect(info.Config.Cmd).toEqual(original.Config.Cmd);
    expect(info.Config.Entrypoint ?? []).toEqual(original.Config.Entrypoint ?? []);
    expect(info.Config.Env).toEqual(original.Config.Env);
    expect(info.Config.Labels).toMatchObject({ [LABELS.app]: app, [LABELS.release]: release.id });
    const { stdout } = await run("docker", ["run", "--rm", committed.image, "cat", "/predeploy.txt"]);
    expect(stdout).toBe("made by predeploy.1\n");

    const failure = await plugin.scheduler
      .commit(app, release, "echo about to fail; exit 7")
      .catch((error: unknown) => error);
    expect(isBerthError(failure, "RELEASE_PHASE_FAILED")).toBe(true);
    expect((failure as Error).message).toMatch(/exited with code 7[\s\S]*about to fail/);
    const left = (await containersOf(app)).filter((container) => !container.Labels[LABELS.processType]);
    expect(left).toEqual([]);
    await removeImage(committed.image);
  });

  it("reconciles from labels: removes leftovers, restarts stopped and re-creates missing instances", async () => {
    const state = await platform.apps.state(app);
    const [webInstance, workerInstance] = await platform.ps.status(app);
    const { stdout } = await run("docker", [
      "create",
      "--label",
      `${LABELS.app}=${app}`,
      "--label",
      `${LABELS.deployment}=v99-interrupted`,
      "--label",
      `${LABELS.processType}=web`,
      "--label",
      `${LABELS.index}=1`,
      image,
    ]);
    const leftover = stdout.trim();
    await run("docker", ["rm", "-f", workerInstance?.id ?? ""]);
    await run("docker", ["stop", "-t", "1", webInstance?.id ?? ""]);
    await platform.reconcile();
    const after = await platform.ps.status(app);
    expect(after.map((instance) => [instance.processType, instance.index, instance.running])).toEqual([
      ["web", 1, true],
      ["worker", 1, true],
    ]);
    expect(after.every((instance) => instance.deployment === state.deployment?.id)).toBe(true);
    expect(after[0]?.id).toBe(webInstance?.id);
    expect(after[1]?.id).not.toBe(workerInstance?.id);
    expect(await get(after[0]?.endpoint)).toEqual({ status: 200, body: "hello" });
    await expect(docker.getContainer(leftover).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it("keeps a stopped app stopped through reconcile, and starts it again", async () => {
    await platform.ps.stop(app);
    const [webInstance] = await platform.ps.status(app);
    expect(webInstance?.running).toBe(false);
    // As if the engine restarted and an `always` restart policy brought the instance back.
    await run("docker", ["start", webInstance?.id ?? ""]);
    await platform.reconcile();
    expect((await platform.ps.status(app)).map((instance) => instance.running)).toEqual([false, false]);
    await platform.ps.start(app);
    const [started] = await platform.ps.status(app);
    expect(started?.id).toBe(webInstance?.id);
    expect(await get(started?.endpoint)).toEqual({ status: 200, body: "hello" });
  });

  it("runs the image's own command for its default process type", async () => {
    const name = `sd-default-${tag}`;
    artifact = {
      builder: "test",
      image,
      defaultProcessTypes: { worker: "echo image-default; exec sleep 100000" },
      imageDefaultProcess: "worker",
    };
    try {
      await platform.apps.create(name);
      await platform.ps.scale(name, { worker: 1 });
      await deploy(name, {});
      const [instance] = await platform.ps.status(name);
      const info = await docker.getContainer(instance?.id ?? "").inspect();
      expect(info.Config.Cmd).toEqual(["sh", "-c", "echo image-default; exec sleep 100000"]);
      await deploy(name, { Procfile: "worker: echo overridden; exec sleep 100000" });
      const [overridden] = await platform.ps.status(name);
      expect((await docker.getContainer(overridden?.id ?? "").inspect()).Config.Cmd).toEqual([
        "/bin/sh",
        "-c",
        "echo overridden; exec sleep 100000",
      ]);
    } finally {
      artifact = { builder: "test", image };
      await platform.apps.destroy(name);
    }
    expect(await containersOf(name)).toEqual([]);
  });

  it("keeps the images of the last releases and removes older ones of the app", async () => {
    const name = `sd-prune-${tag}`;
    const images = [1, 2, 3].map((version) => `berth-test-scheduler-docker-prune-${tag}:v${version}`);
    try {
      await platform.apps.create(name);
      for (const [position, reference] of images.entries()) {
        await buildImage(
          reference,
          `FROM ${image}\nLABEL ${LABELS.app}=${name} ${LABELS.release}=v${position + 1}\n`,
        );
        artifact = { builder: "test", image: reference };
        await deploy(name, { Procfile: `web: ${commands.web}` });
      }
      const present = await Promise.all(
        images.map((reference) =>
          docker
            .getImage(reference)
            .inspect()
            .then(() => true)
            .catch(() => false),
        ),
      );
      expect(present).toEqual([false, true, true]);
      expect((await platform.ps.status(name)).map((instance) => instance.release)).toEqual(["v3"]);
      // The shared base image carries no app label and is never removed.
      expect(await docker.getImage(image).inspect()).toBeTruthy();
    } finally {
      artifact = { builder: "test", image };
      await platform.apps.destroy(name);
    }
    expect(await docker.listImages({ filters: { label: [`${LABELS.app}=${name}`] } })).toEqual([]);
    expect(await docker.listNetworks({ filters: { name: [networkName(name, true)] } })).toEqual([]);
    // Apps without isolatedNetwork share one network, which outlives any one app.
    const shared = await docker.listNetworks({ filters: { name: [SHARED_NETWORK] } });
    expect(shared.some((network) => network.Name === SHARED_NETWORK)).toBe(true);
  });

  it("discards a deployment idempotently and removes every trace of a destroyed app", async () => {
    const state = await platform.apps.state(app);
    await plugin.scheduler.discard(app, "v1-never-existed");
    await plugin.scheduler.discard(app, "v1-never-existed");
    expect(
      (await platform.ps.status(app)).every((instance) => instance.deployment === state.deployment?.id),
    ).toBe(true);
    await platform.apps.destroy(app);
    expect(await containersOf(app)).toEqual([]);
    expect(await docker.listNetworks({ filters: { name: [networkName(app, true)] } })).toEqual([]);
  });
});

describe("stable host ports", () => {
  it("keeps a web instance's host port when the restart policy brings it back", async () => {
    const stableDataDir = await temporaryDirectory();
    const stable = new Platform({ dataDir: stableDataDir, checks: { uptime: 1 } })
      .use(new StaticArtifactBuilderPlugin(() => ({ builder: "test", image })))
      .use(new DockerSchedulerPlugin({ hostPorts: "stable", stopGracePeriodSeconds: 1 }));
    const name = `sd-stable-${tag}`;
    try {
      await stable.apps.create(name);
      await stable.config.set(name, { BODY: "steady" }, { restart: false });
      const source = await sourceFrom({ Procfile: `web: ${commands.web}` });
      await stable.deploy(name, source).finally(() => rm(source.dir, { recursive: true, force: true }));
      const [before] = await stable.ps.status(name);
      const info = await docker.getContainer(before?.id ?? "").inspect();
      expect(info.HostConfig.PortBindings).toEqual({
        "5000/tcp": [{ HostIp: "127.0.0.1", HostPort: String(before?.endpoint?.port) }],
      });
      await run("docker", ["exec", before?.id ?? "", "sh", "-c", "kill -9 $(pidof httpd)"]);
      const after = await poll("web.1 restarted", async () => {
        const [instance] = await stable.ps.status(name);
        return instance?.running && instance.restarts >= 1 ? instance : undefined;
      });
      expect(after.endpoint).toEqual(before?.endpoint);
      expect(await poll("web.1 answering", () => get(before?.endpoint))).toEqual({
        status: 200,
        body: "steady",
      });
    } finally {
      await stable.apps.destroy(name);
      await rm(stableDataDir, { recursive: true, force: true });
    }
  });
});
