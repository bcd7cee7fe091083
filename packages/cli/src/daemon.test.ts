import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeBuilderPlugin, FakeProxy, FakeProxyPlugin, FakeSchedulerPlugin } from "@berth/core/testing";
import { splitCommandLine } from "@berth/git";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./cli.js";
import { commands } from "./commands/definitions.js";
import { resolveConfig } from "./config.js";
import { type BerthDaemon, startDaemon } from "./daemon.js";

/**
 * The daemon and CLI against core's in-memory fake plugins: every command path, permissions and hostile
 * input, without Docker. The real composition is covered by the end-to-end tests.
 */

let root: string;
let daemon: BerthDaemon;
const proxy = new FakeProxy();
const ADMIN_TOKEN = "test-admin-token-0123456789";

async function berth(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: { BERTH_SOCKET: daemon.socketPath, ...env },
  });
  return { code, stdout, stderr };
}

async function source(body: string): Promise<string> {
  const dir = await mkdtemp(join(root, "src-"));
  await writeFile(join(dir, "body.txt"), body);
  return dir;
}

function rawRequest(path: string, body: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const outgoing = request(
      {
        host: "127.0.0.1",
        port: daemon.apiPort,
        path,
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
      },
      (response) => {
        let text = "";
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
      },
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "berth-cli-test-"));
  const config = resolveConfig({
    dataDir: join(root, "data"),
    api: { token: ADMIN_TOKEN, port: 1 },
    defaults: { scheduler: "fake", proxy: "fake" },
  });
  config.api.port = 0;
  daemon = await startDaemon({
    config,
    log: () => {},
    compose: () => ({
      plugins: [new FakeBuilderPlugin(), new FakeSchedulerPlugin(), new FakeProxyPlugin(proxy)],
    }),
  });
});

afterAll(async () => {
  await daemon?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("berth daemon + CLI (fake plugins)", () => {
  it("serves the API on a unix socket with mode 0660", async () => {
    const info = await stat(daemon.socketPath);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o660);
  });

  it("creates an app with the global domain, deploys, lists releases and rolls back", async () => {
    const created = await berth(["apps:create", "hello"]);
    expect(created.code).toBe(0);
    expect((await berth(["domains:report", "hello", "--json"])).stdout).toContain("hello.berth.localhost");

    const first = await berth(["deploy", "hello", "--from-dir", await source("v1")]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("Release: v1");
    expect(first.stdout).toContain("URL:     http://hello.berth.localhost");
    expect(first.stdout).toMatch(/finished in [0-9.]+s/);
    expect((await proxy.fetch("hello"))?.body).toBe("v1");

    expect((await berth(["deploy", "hello", "--from-dir", await source("v2")])).code).toBe(0);
    expect((await proxy.fetch("hello"))?.body).toBe("v2");

    const releases = JSON.parse((await berth(["releases", "hello", "--json"])).stdout);
    expect(releases.map((release: { id: string }) => release.id)).toEqual(["v1", "v2"]);
    expect(releases[1].current).toBe(true);

    const rolledBack = await berth(["rollback", "hello", "v1"]);
    expect(rolledBack.code).toBe(0);
    expect(rolledBack.stdout).toContain("Release: v3");
    expect((await proxy.fetch("hello"))?.body).toBe("v1");
    const info = JSON.parse((await berth(["releases:info", "hello", "v3", "--json"])).stdout);
    expect(info.source).toMatchObject({ kind: "rollback", from: "v1" });
  });

  it("renders every read command that takes just an app as a human table, not only as JSON", async () => {
    const readers = commands.filter((command) => command.read && command.usage === "APP" && command.render);
    expect(readers.map((command) => command.name)).toContain("releases");
    for (const command of readers) {
      const shown = await berth([command.name, "hello"]);
      expect({ command: command.name, code: shown.code, stderr: shown.stderr }).toEqual({
        command: command.name,
        code: 0,
        stderr: "",
      });
    }
    const releases = (await berth(["releases", "hello"])).stdout;
    expect(releases).toMatch(/^\s*RELEASE\s+STATUS\s+CREATED\s+DESCRIPTION\s+IMAGE/m);
    expect(releases).toMatch(/^\*\s+v3\s+succeeded\s.*Rollback to v1\s+fake\/hello:v1$/m);
  });

  it("sets config as a new release, scales, runs one-off commands with their exit code", async () => {
    const set = await berth(["config:set", "hello", 'GREETING=it\'s "quoted" $HOME', "OTHER=1"]);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("Release: v4");
    expect((await berth(["config:get", "hello", "GREETING"])).stdout).toBe(`it's "quoted" $HOME\n`);
    expect((await berth(["config:export", "hello"])).stdout).toContain(
      `export GREETING='it'\\''s "quoted" $HOME'`,
    );
    expect((await berth(["config:get", "hello", "MISSING"])).code).toBe(3);

    expect((await berth(["config:unset", "hello", "OTHER", "--no-restart"])).code).toBe(0);
    expect(JSON.parse((await berth(["config:show", "hello", "--json"])).stdout)).toEqual({
      GREETING: `it's "quoted" $HOME`,
    });

    expect((await berth(["ps:scale", "hello", "web=2"])).code).toBe(0);
    const report = JSON.parse((await berth(["ps:report", "hello", "--json"])).stdout);
    expect(
      report.instances.filter((instance: { processType: string }) => instance.processType === "web"),
    ).toHaveLength(2);

    const echoed = await berth(["run", "hello", "echo", "hi", "--there"]);
    expect(echoed).toMatchObject({ code: 0, stdout: "hi --there\n" });
    expect((await berth(["run", "hello", "exit", "7"])).code).toBe(7);
  });

  it("refuses hostile input with the error code and changes nothing", async () => {
    const before = await readdir(join(daemon.config.dataDir, "apps"));
    const cases: Array<[string[], string, number]> = [
      [["apps:create", "Bad;rm -rf /"], "INVALID_APP_NAME", 2],
      [["apps:create", "../etc"], "INVALID_APP_NAME", 2],
      [["apps:create", "a".repeat(64)], "INVALID_APP_NAME", 2],
      [["config:set", "hello", "1BAD=x"], "INVALID_CONFIG_KEY", 2],
      [["config:set", "hello", "BAD-KEY=x"], "INVALID_CONFIG_KEY", 2],
      [["config:set", "hello", "OK=x\u0000y"], "INVALID_CONFIG_VALUE", 2],
      [["domains:add", "hello", "evil.com;reload"], "INVALID_DOMAIN", 2],
      [["domains:add", "hello", "a..b"], "INVALID_DOMAIN", 2],
      [["domains:add", "hello", "x.com\n}server{"], "INVALID_DOMAIN", 2],
      [["ports:add", "hello", "http:99999:80"], "INVALID_PORT", 2],
      [["ps:scale", "hello", "web=-1"], "INVALID_SCALE", 2],
      [["ps:scale", "hello", "Web;x=1"], "INVALID_PROCESS_TYPE", 2],
      [["rollback", "hello", "v0"], "RELEASE_NOT_FOUND", 3],
      [["deploy", "hello", "--from-image", "--rm; rm -rf /"], "INVALID_SOURCE", 2],
      [["buildpacks:add", "hello", "--upload-pack=evil"], "USAGE", 2],
      [["buildpacks:add", "hello", "ext::sh -c evil"], "INVALID_SETTING", 2],
      [["config:show", "nope"], "APP_NOT_FOUND", 3],
      [["apps:destroy", "hello"], "CONFIRMATION_REQUIRED", 2],
      [["no:such-command"], "COMMAND_NOT_FOUND", 3],
      [["apps:create"], "USAGE", 2],
    ];
    for (const [argv, code, exit] of cases) {
      const result = await berth(argv);
      expect(result.stderr, argv.join(" ")).toContain(`[${code}]`);
      expect(result.code, argv.join(" ")).toBe(exit);
    }
    expect(await readdir(join(daemon.config.dataDir, "apps"))).toEqual(before);
    expect(JSON.parse((await berth(["config:show", "hello", "--json"])).stdout)).toEqual({
      GREETING: `it's "quoted" $HOME`,
    });
    expect(JSON.parse((await berth(["domains:report", "hello", "--json"])).stdout).domains).toEqual([
      "hello.berth.localhost",
    ]);
  });

  it("refuses unauthenticated TCP calls and admin commands from app-scoped tokens", async () => {
    const unauthenticated = await rawRequest("/v1/commands/apps:list", "{}");
    expect(unauthenticated.status).toBe(401);
    expect(JSON.parse(unauthenticated.body)).toMatchObject({ type: "error", code: "UNAUTHORIZED" });
    const wrong = await berth(["apps:list"], {
      BERTH_API_URL: `http://127.0.0.1:${daemon.apiPort}`,
      BERTH_TOKEN: "berth_wrong",
    });
    expect(wrong.code).toBe(4);

    expect((await berth(["apps:create", "other"])).code).toBe(0);
    const created = JSON.parse((await berth(["tokens:create", "ci", "--app", "hello", "--json"])).stdout);
    expect(created.token).toMatch(/^ci:berth_[A-Za-z0-9_-]{32}$/);
    const scoped = { BERTH_API_URL: `http://127.0.0.1:${daemon.apiPort}`, BERTH_TOKEN: created.token };

    expect((await berth(["config:show", "hello"], scoped)).code).toBe(0);
    expect(JSON.parse((await berth(["apps:list", "--json"], scoped)).stdout)).toEqual(["hello"]);
    for (const argv of [
      ["apps:create", "sneaky"],
      ["config:show", "other"],
      ["apps:destroy", "hello", "--force"],
      ["tokens:create", "mine"],
      ["events"],
    ]) {
      const refused = await berth(argv, scoped);
      expect(refused.code, argv.join(" ")).toBe(4);
      expect(refused.stderr).toContain("[FORBIDDEN]");
    }
    expect(await readdir(join(daemon.config.dataDir, "apps"))).not.toContain("sneaky");
    const admin = { BERTH_API_URL: `http://127.0.0.1:${daemon.apiPort}`, BERTH_TOKEN: ADMIN_TOKEN };
    expect((await berth(["apps:list"], admin)).stdout).toContain("other");

    expect((await berth(["tokens:revoke", "ci"])).code).toBe(0);
    expect((await berth(["config:show", "hello"], scoped)).code).toBe(4);
  });

  it("locks deploys, renames and destroys apps", async () => {
    expect((await berth(["apps:lock", "other"])).code).toBe(0);
    const locked = await berth(["deploy", "other", "--from-dir", await source("x")]);
    expect(locked.code).toBe(5);
    expect(locked.stderr).toContain("apps:unlock other");
    expect((await berth(["apps:unlock", "other"])).code).toBe(0);
    expect((await berth(["deploy", "other", "--from-dir", await source("x")])).code).toBe(0);

    expect((await berth(["apps:rename", "other", "renamed"])).code).toBe(0);
    expect(JSON.parse((await berth(["domains:report", "renamed", "--json"])).stdout).domains).toEqual([
      "renamed.berth.localhost",
    ]);
    expect((await berth(["apps:destroy", "renamed", "--force"])).code).toBe(0);
    expect(JSON.parse((await berth(["apps:list", "--json"])).stdout)).toEqual(["hello"]);
  });

  it("shows events, plugin settings and checks", async () => {
    const events = await berth(["events", "hello", "-n", "5", "--json"]);
    const lines = events.stdout.trim().split("\n");
    expect(lines, events.stdout).toHaveLength(5);
    for (const line of lines) expect(JSON.parse(line).app).toBe("hello");
    expect((await berth(["buildpacks:add", "hello", "https://example.com/buildpack-a.git"])).code).toBe(0);
    expect(
      (await berth(["buildpacks:add", "hello", "https://example.com/buildpack-b.git", "--index", "1"])).code,
    ).toBe(0);
    expect(JSON.parse((await berth(["buildpacks:list", "hello", "--json"])).stdout)).toEqual([
      "https://example.com/buildpack-b.git",
      "https://example.com/buildpack-a.git",
    ]);
    expect((await berth(["checks:disable", "hello", "worker"])).code).toBe(0);
    expect((await berth(["checks:skip", "hello"])).code).toBe(0);
    expect(JSON.parse((await berth(["checks:report", "hello", "--json"])).stdout)).toEqual({
      disabled: ["worker"],
      skipped: ["_all_"],
    });
    expect((await berth(["checks:enable", "hello"])).code).toBe(0);
    expect(JSON.parse((await berth(["checks:report", "hello", "--json"])).stdout)).toEqual({
      disabled: [],
      skipped: [],
    });
  });

  it("has --help with an example for every command and reports a missing daemon with exit 69", async () => {
    for (const command of commands) {
      const help = await berth([command.name, "--help"]);
      expect(help.code, command.name).toBe(0);
      expect(help.stdout).toContain(`Usage: berth ${command.name}`);
      expect(help.stdout).toContain("Example:");
    }
    const missing = await berth(["apps:list"], { BERTH_SOCKET: join(root, "nothing.sock") });
    expect(missing.code).toBe(69);
    expect(missing.stderr).toContain("[DAEMON_UNAVAILABLE]");
  });

  it("splits SSH command lines like a shell, without expanding anything", () => {
    expect(splitCommandLine(`config:set hello A='x y' B="a\\"b" C=$(reboot) D=\\;`)).toEqual([
      "config:set",
      "hello",
      "A=x y",
      'B=a"b',
      "C=$(reboot)",
      "D=;",
    ]);
  });
});
