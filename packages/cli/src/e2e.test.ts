import { spawn } from "node:child_process";
import { cp, readdir, stat } from "node:fs/promises";
import { request } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AppSource,
  BIN,
  docker,
  getByHost,
  makeKey,
  REPO_DIR,
  runProgram,
  sshCommand,
  TestDaemon,
  uniqueName,
  waitFor,
} from "./test-support/e2e.js";

/**
 * End to end: a real `berth daemon` process (git over HTTP and SSH, Docker, nginx), the real CLI process, the
 * real git and ssh clients. Every app name is unique to this run; only those apps' resources are touched.
 */

let daemon: TestDaemon;
let token: string;
let admin: { privateKey: string; publicKeyPath: string };
const app = uniqueName("e2e-web");
const host = `${app}.berth.localhost`;
let source: AppSource;

function pushUrl(name: string): string {
  const [user, secret] = token.split(/:(.*)/s) as [string, string];
  return `http://${encodeURIComponent(user)}:${encodeURIComponent(secret)}@127.0.0.1:${daemon.ports.git}/${name}.git`;
}

async function pushHttp(from: AppSource, name = app) {
  return from.git(["push", "--force", pushUrl(name), "HEAD:main"]);
}

async function pushSsh(from: AppSource, key: string, name = app) {
  return from.git(["push", "--force", `ssh://berth@127.0.0.1:${daemon.ports.ssh}/${name}.git`, "HEAD:main"], {
    GIT_SSH_COMMAND: ["ssh", ...sshCommand(key, daemon.ports.ssh)].join(" "),
  });
}

async function served(name = host): Promise<string> {
  const answer = await getByHost(daemon.ports.http, name);
  return answer.status === 200 ? answer.body.trim() : `HTTP ${answer.status}`;
}

async function appContainers(name = app): Promise<string[]> {
  const ids = await docker(["ps", "-aq", "--filter", `label=berth.app=${name}`]);
  return ids ? ids.split("\n") : [];
}

function json<T = unknown>(text: string): T {
  return JSON.parse(text) as T;
}

beforeAll(async () => {
  daemon = await TestDaemon.create();
  await daemon.start();
  const created = await daemon.berth(["tokens:create", "e2e", "--json"]);
  expect(created.code, created.stderr).toBe(0);
  token = json<{ token: string }>(created.stdout).token;
  admin = await makeKey(daemon.root, "admin");
  expect((await daemon.berth(["keys:add", "admin", admin.publicKeyPath])).code).toBe(0);
  expect((await daemon.berth(["apps:create", app])).code).toBe(0);
  source = await AppSource.create(daemon.root, app);
});

afterAll(async () => {
  if (daemon?.process) {
    const listed = await daemon.berth(["apps:list", "--json"]);
    for (const name of listed.code === 0 ? json<string[]>(listed.stdout) : []) {
      await daemon.berth(["apps:destroy", name, "--force"]);
    }
  }
  await daemon?.dispose();
});

describe("berth end to end (daemon, git, Docker, nginx)", () => {
  it("push → build → run → served by domain; v2; releases; rollback v1", async () => {
    await source.write("Hello v1");
    await source.commit("v1");
    const first = await pushHttp(source);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain("remote: -----> Building");
    expect(first.stderr).toMatch(/remote: -----> Done: e2e-web-[0-9a-f]+ v1 deployed/);
    expect(await served()).toBe("Hello v1");

    await source.write("Hello v2");
    await source.commit("v2");
    expect((await pushHttp(source)).code).toBe(0);
    expect(await served()).toBe("Hello v2");

    const releases = json<Array<{ id: string; status: string; current: boolean }>>(
      (await daemon.berth(["releases", app, "--json"])).stdout,
    );
    expect(releases.map((release) => [release.id, release.status])).toEqual([
      ["v1", "succeeded"],
      ["v2", "succeeded"],
    ]);

    const rollback = await daemon.berth(["rollback", app, "v1"]);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stdout).toContain("Release: v3");
    expect(rollback.stdout).toContain(`URL:     http://${host}:${daemon.ports.http}`);
    expect(await served()).toBe("Hello v1");
  });

  it("config:set reaches the app as a new release; ps:scale web=2 behind nginx; logs and run work", async () => {
    const set = await daemon.berth([
      "config:set",
      app,
      'GREETING=it\'s "quoted" $HOME; `x`',
      "BERTH_TEST_MARK=mark-1",
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("Release: v4");
    expect((await getByHost(daemon.ports.http, host, "/cgi-bin/greeting")).body).toBe(
      'it\'s "quoted" $HOME; `x`\n',
    );

    const scaled = await daemon.berth(["ps:scale", app, "web=2"]);
    expect(scaled.code, scaled.stderr).toBe(0);
    const report = json<{
      instances: Array<{ processType: string; running: boolean; endpoint?: { port: number } }>;
    }>((await daemon.berth(["ps:report", app, "--json"])).stdout);
    const web = report.instances.filter((instance) => instance.processType === "web" && instance.running);
    expect(web).toHaveLength(2);
    const upstreams = json<{ urls: string[] }>((await daemon.berth(["apps:report", app, "--json"])).stdout);
    expect(upstreams.urls).toContain(`http://${host}:${daemon.ports.http}`);
    // Both instances answer through nginx: every endpoint nginx balances over serves the app.
    for (const instance of web) {
      const direct = await getByHost(instance.endpoint?.port as number, "127.0.0.1");
      expect(direct.body.trim()).toBe("Hello v1");
    }
    for (let attempt = 0; attempt < 6; attempt += 1) expect(await served()).toBe("Hello v1");

    await waitFor(
      async () => (await daemon.berth(["logs", app, "-n", "20"])).stdout.includes("booting mark-1"),
      20_000,
      "the boot line in the logs",
    );
    const logs = await daemon.berth(["logs", app, "-p", "web", "-n", "5"]);
    expect(logs.stdout).toMatch(/web\.[12]: booting mark-1/);

    // logs -t follows until Ctrl-C, which ends the CLI at once with 130.
    const follow = spawn(process.execPath, [BIN, "logs", app, "-t", "-n", "1"], {
      env: { ...process.env, BERTH_SOCKET: daemon.socket },
    });
    let followed = "";
    follow.stdout.on("data", (chunk) => {
      followed += chunk;
    });
    const followEnded = new Promise<number | null>((resolveEnd) => follow.on("close", resolveEnd));
    await waitFor(async () => followed.includes("booting mark-1"), 20_000, "logs -t to print");
    follow.kill("SIGINT");
    expect(await followEnded).toBe(130);

    const oneOff = await daemon.berth(["run", app, "sh", "-c", 'echo "$GREETING"; exit 3']);
    expect(oneOff.stdout).toContain('it\'s "quoted" $HOME; `x`');
    expect(oneOff.code).toBe(3);
  });

  it("rejects a push whose health check fails, with the reason, and keeps the previous release serving", async () => {
    const before = json<Array<{ id: string }>>(
      (await daemon.berth(["releases", app, "--json"])).stdout,
    ).length;
    await source.write("Broken page without the greeting");
    await source.commit("broken");
    const push = await pushHttp(source);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/remote: .*(check|Hello)/i);
    expect(push.stderr).toContain("is still serving");
    expect(await served()).toBe("Hello v1");
    const releases = json<Array<{ id: string; status: string; failure?: { code: string } }>>(
      (await daemon.berth(["releases", app, "--json"])).stdout,
    );
    expect(releases).toHaveLength(before + 1);
    expect(releases.at(-1)?.status).toBe("failed");
  });

  it("kill -9 in the middle of a deploy: previous release served, no lock, no leftovers, next push succeeds", async () => {
    expect((await daemon.berth(["ps:scale", app, "web=1"])).code).toBe(0);
    const serving = await appContainers();
    await source.write("Hello after crash", { checkDelaySeconds: 30 });
    await source.commit("slow check");
    const push = spawn("git", ["push", "--force", pushUrl(app), "HEAD:main"], {
      cwd: source.dir,
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
    });
    let pushed = "";
    push.stderr.on("data", (chunk) => {
      pushed += chunk;
    });
    const pushEnded = new Promise((resolveEnd) => push.on("close", resolveEnd));
    await waitFor(
      async () => pushed.includes("Checking new instances"),
      120_000,
      "the deploy to reach its checks",
    );
    // The new instance exists now: a crash here must not leave it behind.
    expect((await appContainers()).length).toBeGreaterThan(serving.length);
    await daemon.kill();
    await pushEnded;

    // nginx and the old instances outlive the daemon.
    expect(await served()).toBe("Hello v1");
    await daemon.start();
    expect(await served()).toBe("Hello v1");
    await waitFor(
      async () => (await appContainers()).length === serving.length,
      30_000,
      "reconcile to remove leftovers",
    );
    expect((await appContainers()).sort()).toEqual(serving.sort());
    const releases = json<Array<{ status: string; failure?: { code: string } }>>(
      (await daemon.berth(["releases", app, "--json"])).stdout,
    );
    expect(releases.at(-1)).toMatchObject({ status: "failed", failure: { code: "DEPLOY_INTERRUPTED" } });

    await source.write("Hello after crash");
    await source.commit("after crash");
    const next = await pushSsh(source, admin.privateKey);
    expect(next.code, next.stderr).toBe(0);
    expect(await served()).toBe("Hello after crash");
  });

  it("refuses hostile input, unauthenticated API calls and app-scoped keys running admin commands; nothing changes", async () => {
    const appsBefore = await readdir(join(daemon.dataDir, "apps"));
    const configBefore = (await daemon.berth(["config:show", app, "--json"])).stdout;
    const domainsBefore = (await daemon.berth(["domains:report", app, "--json"])).stdout;
    const hostile: Array<[string[], string]> = [
      [["apps:create", "../../etc"], "INVALID_APP_NAME"],
      [["apps:create", "x;reboot"], "INVALID_APP_NAME"],
      [["config:set", app, "$(id)=1"], "INVALID_CONFIG_KEY"],
      [["domains:add", app, "x.com; include /etc/passwd"], "INVALID_DOMAIN"],
      [["domains:add", app, "a.com\n}"], "INVALID_DOMAIN"],
      [["domains:add", app, "*.*.com"], "INVALID_DOMAIN"],
      [["ports:add", app, "http:80:0"], "INVALID_PORT"],
      [["deploy", app, "--from-image", "evil image"], "INVALID_SOURCE"],
    ];
    for (const [args, code] of hostile) {
      const result = await daemon.berth(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toContain(`[${code}]`);
    }
    expect(await readdir(join(daemon.dataDir, "apps"))).toEqual(appsBefore);
    expect((await daemon.berth(["config:show", app, "--json"])).stdout).toBe(configBefore);
    expect((await daemon.berth(["domains:report", app, "--json"])).stdout).toBe(domainsBefore);
    expect(await served()).toBe("Hello after crash");

    // The TCP API without credentials, with a wrong token, and with the config's admin token.
    const unauthenticated = await new Promise<{ status: number; body: string }>((resolveCall, reject) => {
      const outgoing = request(
        { host: "127.0.0.1", port: daemon.ports.api, method: "POST", path: "/v1/commands/apps:destroy" },
        (response) => {
          let body = "";
          response.on("data", (chunk) => {
            body += chunk;
          });
          response.on("end", () => resolveCall({ status: response.statusCode ?? 0, body }));
        },
      );
      outgoing.on("error", reject);
      outgoing.end(JSON.stringify({ args: [app], flags: { force: true } }));
    });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.body).toContain("UNAUTHORIZED");
    const api = { BERTH_API_URL: `http://127.0.0.1:${daemon.ports.api}` };
    expect(
      (await daemon.berth(["apps:destroy", app, "--force"], { ...api, BERTH_TOKEN: "e2e:wrong" })).code,
    ).toBe(4);
    expect((await daemon.berth(["apps:list"], { ...api, BERTH_TOKEN: daemon.adminToken })).stdout).toContain(
      app,
    );

    // An SSH key scoped to the app: app commands on it work, admin commands and other apps are refused.
    const scoped = await makeKey(daemon.root, "scoped");
    expect((await daemon.berth(["keys:add", "scoped", scoped.publicKeyPath, "--app", app])).code).toBe(0);
    const ssh = (...words: string[]) =>
      runProgram("ssh", [...sshCommand(scoped.privateKey, daemon.ports.ssh), "berth@127.0.0.1", ...words]);
    const own = await ssh("config:get", app, "BERTH_TEST_MARK");
    expect(own).toMatchObject({ code: 0, stdout: "mark-1\n" });
    for (const words of [
      ["apps:create", "sneaky"],
      ["keys:add", "x", "ssh-ed25519", "AAAA"],
      ["apps:destroy", app, "--force"],
      ["tokens:list"],
    ]) {
      const refused = await ssh(...words);
      expect(refused.code, words.join(" ")).not.toBe(0);
      expect(refused.code, words.join(" ")).toBe(4);
      expect(refused.stderr).toContain("[FORBIDDEN]");
    }
    const otherApp = await ssh("config:show", "some-other-app");
    expect(otherApp.code).toBe(4);
    expect(otherApp.stderr).toContain("[FORBIDDEN]");
    expect(await readdir(join(daemon.dataDir, "apps"))).toEqual(appsBefore);
    expect(json<string[]>((await daemon.berth(["apps:list", "--json"])).stdout)).toEqual([app]);
  });

  it("deploys without git (--from-dir, --from-image) through the same checks", async () => {
    const fromDir = await daemon.berth(["deploy", app, "--from-dir", source.dir]);
    expect(fromDir.code, fromDir.stderr).toBe(0);
    expect(await served()).toBe("Hello after crash");
    const current = json<Array<{ id: string; current: boolean; image: string }>>(
      (await daemon.berth(["releases", app, "--json"])).stdout,
    ).find((release) => release.current);
    const fromImage = await daemon.berth(["deploy", app, "--from-image", current?.image as string]);
    expect(fromImage.code, fromImage.stderr).toBe(0);
    expect(fromImage.stdout).toContain("Releasing image");
    expect(await served()).toBe("Hello after crash");
  });

  it("rebuilds from git, serves HTTPS with a generated certificate, runs cron entries, deploys a tar over SSH", async () => {
    await source.write("Hello with cron", {
      appJson: { cron: [{ schedule: "*/5 * * * *", command: "echo cron-ran-$BERTH_TEST_MARK" }] },
    });
    await source.commit("cron");
    expect((await pushSsh(source, admin.privateKey)).code).toBe(0);
    const rebuilt = await daemon.berth(["ps:rebuild", app]);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(rebuilt.stdout).toContain("Building");
    expect(await served()).toBe("Hello with cron");

    const entries = json<Array<{ id: string; schedule: string; command: string }>>(
      (await daemon.berth(["cron:list", app, "--json"])).stdout,
    );
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ schedule: "*/5 * * * *" });
    const cron = await daemon.berth(["cron:run", app, entries[0]?.id as string]);
    expect(cron).toMatchObject({ code: 0 });
    expect(cron.stdout).toContain("cron-ran-mark-1");

    const certificate = await daemon.berth(["certs:generate", app]);
    expect(certificate.code, certificate.stderr).toBe(0);
    const secure = await new Promise<{ status: number; body: string }>((resolveCall, reject) => {
      const outgoing = httpsRequest(
        {
          host: "127.0.0.1",
          port: daemon.ports.https,
          servername: host,
          headers: { host },
          rejectUnauthorized: false,
        },
        (response) => {
          let body = "";
          response.on("data", (chunk) => {
            body += chunk;
          });
          response.on("end", () => resolveCall({ status: response.statusCode ?? 0, body }));
        },
      );
      outgoing.on("error", reject);
      outgoing.end();
    });
    expect(secure).toMatchObject({ status: 200, body: "Hello with cron\n" });
    expect((await daemon.berth(["certs:remove", app])).code).toBe(0);

    // `tar c . | ssh berth@host deploy APP --from-dir -`
    await source.write("Hello from a tarball");
    const tarball = await runProgram("sh", [
      "-c",
      `tar -C "$1" --exclude=.git -c . | ssh ${sshCommand(admin.privateKey, daemon.ports.ssh).join(" ")} berth@127.0.0.1 deploy ${app} --from-dir -`,
      "sh",
      source.dir,
    ]);
    expect(tarball.code, tarball.stderr).toBe(0);
    expect(tarball.stdout).toContain("Release: v");
    expect(await served()).toBe("Hello from a tarball");
  });

  it("deploys a buildpack app pushed over SSH (builder-herokuish on the stack image)", async () => {
    const buildpackApp = uniqueName("e2e-bp");
    expect((await daemon.berth(["apps:create", buildpackApp])).code).toBe(0);
    expect(
      (
        await daemon.berth([
          "buildpacks:set",
          buildpackApp,
          join(REPO_DIR, "examples", "buildpacks", "static"),
        ])
      ).code,
    ).toBe(0);
    const staticSource = await AppSource.create(daemon.root, buildpackApp);
    await cp(join(REPO_DIR, "examples", "apps", "buildpack-static"), staticSource.dir, { recursive: true });
    await staticSource.commit("static");
    const push = await pushSsh(staticSource, admin.privateKey, buildpackApp);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain("buildpack");
    expect((await served(`${buildpackApp}.berth.localhost`)).toLowerCase()).toContain(
      "hello from a static buildpack app",
    );
    expect((await daemon.berth(["apps:destroy", buildpackApp, "--force"])).code).toBe(0);
    expect(await appContainers(buildpackApp)).toEqual([]);
  });

  it("stops and starts, renames (domain follows), and adds domains, all through nginx", async () => {
    expect((await daemon.berth(["ps:stop", app])).code).toBe(0);
    expect(await served()).not.toBe("Hello from a tarball");
    expect((await daemon.berth(["ps:start", app])).code).toBe(0);
    await waitFor(async () => (await served()) === "Hello from a tarball", 30_000, "the app to serve again");

    const renamed = uniqueName("e2e-renamed");
    const rename = await daemon.berth(["apps:rename", app, renamed]);
    expect(rename.code, rename.stderr).toBe(0);
    expect(await served(`${renamed}.berth.localhost`)).toBe("Hello from a tarball");
    expect((await getByHost(daemon.ports.http, host)).status).not.toBe(200);
    expect(await appContainers(app)).toEqual([]);
    expect((await daemon.berth(["apps:rename", renamed, app])).code).toBe(0);
    expect(await served()).toBe("Hello from a tarball");

    expect((await daemon.berth(["domains:add", app, "www.e2e-example.test"])).code).toBe(0);
    expect(await served("www.e2e-example.test")).toBe("Hello from a tarball");
    expect((await daemon.berth(["domains:remove", app, "www.e2e-example.test"])).code).toBe(0);
    expect((await getByHost(daemon.ports.http, "www.e2e-example.test")).status).not.toBe(200);
  });

  it("apps:destroy removes containers, images, vhost, repository and state", async () => {
    expect((await appContainers()).length).toBeGreaterThan(0);
    const destroyed = await daemon.berth(["apps:destroy", app, "--force"]);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect(await appContainers()).toEqual([]);
    expect(await docker(["images", "-q", `berth/${app}`])).toBe("");
    expect((await getByHost(daemon.ports.http, host)).status).not.toBe(200);
    expect(await stat(join(daemon.dataDir, "repos", `${app}.git`)).catch(() => undefined)).toBeUndefined();
    expect(await stat(join(daemon.dataDir, "apps", app)).catch(() => undefined)).toBeUndefined();
    expect((await daemon.berth(["apps:report", app])).code).toBe(3);
  });
});
