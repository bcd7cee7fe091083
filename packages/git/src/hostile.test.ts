import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basicAuth, createWorld, listTree, rawRequest, run, type World } from "./test/world.js";

let world: World;
let before: string[];
/** Client-side directories of the test, not the server's. */
const CLIENT_DIRS = ["home", "work", "keys"];

beforeAll(async () => {
  world = await createWorld();
  // One good push first, so every directory the server legitimately makes exists before the attacks.
  const dir = await world.repo({ "body.txt": "ok\n" });
  const push = await world.git(["push", world.url("http", "legit"), "main"], { cwd: dir });
  if (push.code !== 0) throw new Error(push.stderr);
  before = await listTree(world.root, CLIENT_DIRS);
});

afterAll(async () => {
  await world?.close();
});

const LONG = `a${"b".repeat(299)}`;

function ssh(args: string[], key = world.adminKey) {
  return run(
    "ssh",
    [
      "-i",
      key,
      "-p",
      String(world.ssh.port),
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      ...args,
    ],
    { env: world.env, timeoutMs: 30_000 },
  );
}

describe("hostile names and paths", () => {
  const names = ["../x", "a;id", "%2e%2e/x", "App", "x.git/../../etc", LONG, "-upload", "a b", "x'y"];

  it.each(names)("HTTP refuses %j", async (name) => {
    for (const service of ["git-receive-pack", "git-upload-pack"]) {
      const response = await rawRequest(
        world.http.port,
        "GET",
        `/${name.replace(/ /g, "%20")}.git/info/refs?service=${service}`,
        basicAuth("admin", world.adminToken),
      );
      expect([400, 404]).toContain(response.status);
    }
    const post = await rawRequest(
      world.http.port,
      "POST",
      `/${name.replace(/ /g, "%20")}.git/git-receive-pack`,
      { ...basicAuth("admin", world.adminToken), "content-type": "application/x-git-receive-pack-request" },
      Buffer.from("0000"),
    );
    expect([400, 404]).toContain(post.status);
  });

  it.each(names)("SSH refuses %j", async (name) => {
    const quoted = `'${name.replace(/'/g, `'\\''`)}'`;
    for (const service of ["git-receive-pack", "git-upload-pack"]) {
      const result = await ssh([`berth@127.0.0.1`, `${service} ${quoted}`]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/Invalid app name|Only git-receive-pack/);
    }
  });

  it("refuses `git-upload-pack '../../etc'` and other git commands", async () => {
    const etc = await ssh(["berth@127.0.0.1", "git-upload-pack '../../etc'"]);
    expect(etc.code).not.toBe(0);
    expect(etc.stderr).toContain('Invalid app name "../../etc"');
    const archive = await ssh(["berth@127.0.0.1", "git-upload-archive 'legit'"]);
    expect(archive.code).not.toBe(0);
    expect(archive.stderr).toContain("Only git-receive-pack and git-upload-pack");
  });

  it("refuses hostile remotes through the git client", async () => {
    const dir = await world.repo({ "body.txt": "x\n" });
    for (const name of ["App", "a;id", LONG]) {
      const overHttp = await world.git(["push", world.url("http", name), "main"], { cwd: dir });
      expect(overHttp.code).not.toBe(0);
      const overSsh = await world.git(["push", `ssh://berth@127.0.0.1:${world.ssh.port}/${name}`, "main"], {
        cwd: dir,
        transport: "ssh",
      });
      expect(overSsh.code).not.toBe(0);
    }
  });

  it("created nothing anywhere", async () => {
    expect(await listTree(world.root, CLIENT_DIRS)).toEqual(before);
    expect(await world.platform.apps.list()).toEqual(["legit"]);
  });
});

describe("SSH requests other than git and commands", () => {
  it("refuses a shell", async () => {
    const result = await ssh(["-T", "berth@127.0.0.1"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/shell request failed/);
    expect(world.refusals).toContainEqual({ request: "shell", user: "admin" });
  });

  it("refuses a PTY (the command still runs without one)", async () => {
    const result = await ssh(["-tt", "berth@127.0.0.1", "help"]);
    expect(result.stderr + result.stdout).toMatch(/PTY allocation request failed/);
    expect(world.refusals).toContainEqual({ request: "pty", user: "admin" });
  });

  it("refuses local and remote port forwarding", async () => {
    const local = await ssh(["-W", `127.0.0.1:${world.http.port}`, "berth@127.0.0.1"]);
    expect(local.code).not.toBe(0);
    expect(local.stderr).toMatch(/stdio forwarding failed|open failed|administratively prohibited/);
    const remote = await ssh([
      "-o",
      "ExitOnForwardFailure=yes",
      "-R",
      "0:127.0.0.1:9",
      "berth@127.0.0.1",
      "help",
    ]);
    expect(remote.code).not.toBe(0);
    expect(remote.stderr).toMatch(/remote port forwarding failed/);
    expect(world.refusals).toContainEqual({ request: "direct-tcpip", user: "admin" });
    expect(world.refusals).toContainEqual({ request: "tcpip-forward", user: "admin" });
  });

  it("refuses agent forwarding", async () => {
    const agent = await run("ssh-agent", ["-s"], { env: world.env });
    const socket = /SSH_AUTH_SOCK=([^;]+);/.exec(agent.stdout)?.[1];
    const pid = /SSH_AGENT_PID=([0-9]+);/.exec(agent.stdout)?.[1];
    try {
      const result = await run(
        "ssh",
        [
          "-A",
          "-v",
          "-i",
          world.adminKey,
          "-p",
          String(world.ssh.port),
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "berth@127.0.0.1",
          "help",
        ],
        { env: { ...world.env, ...(socket ? { SSH_AUTH_SOCK: socket } : {}) }, timeoutMs: 30_000 },
      );
      expect(result.stderr).toContain("Requesting authentication agent forwarding");
      expect(result.code, result.stderr).toBe(0);
      expect(world.refusals).toContainEqual({ request: "auth-agent", user: "admin" });
    } finally {
      if (pid) process.kill(Number(pid));
    }
  });
});

describe("Berth commands over SSH", () => {
  beforeAll(() => {
    world.plugin.commands.register("test:echo", ({ argv, user, stdout, stderr }) => {
      stdout.write(`${JSON.stringify({ argv, user: user.user, admin: user.admin, apps: user.apps })}\n`);
      stderr.write("to stderr\n");
      return 3;
    });
  });

  it("passes words, identity and exit code through, with no shell expansion", async () => {
    const result = await ssh(["berth@127.0.0.1", `test:echo config:set "A=b c" '$(id)' \\;`]);
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout)).toEqual({
      argv: ["config:set", "A=b c", "$(id)", ";"],
      user: "admin",
      admin: true,
      apps: [],
    });
    expect(result.stderr).toContain("to stderr");
  });

  it("answers unknown commands with 127 and keeps admin commands from scoped keys", async () => {
    const unknown = await ssh(["berth@127.0.0.1", "rm -rf /"]);
    expect(unknown.code).toBe(127);
    expect(unknown.stderr).toContain('Unknown command "rm"');
    const grace = await world.newKey("grace");
    await world.plugin.keys.add("grace", grace.publicKey, { apps: ["legit"] });
    const scoped = await ssh(["berth@127.0.0.1", "keys:list"], grace.privateKey);
    expect(scoped.code).toBe(1);
    expect(scoped.stderr).toContain("keys:list is for admins only");
    const listed = await ssh(["berth@127.0.0.1", "keys:list"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^grace\tSHA256:[A-Za-z0-9+/]{43}\tlegit$/m);
  });

  it("adds and removes keys with keys:add and keys:remove", async () => {
    const henry = await world.newKey("henry");
    const added = await ssh(["berth@127.0.0.1", `keys:add henry --app legit ${henry.publicKey}`]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^Added henry SHA256:\S+ \(legit\)$/m);
    const asHenry = await ssh(["berth@127.0.0.1", "help"], henry.privateKey);
    expect(asHenry.code).toBe(0);
    expect(asHenry.stdout).not.toContain("keys:add");
    const removed = await ssh(["berth@127.0.0.1", "keys:remove henry"]);
    expect(removed.code).toBe(0);
    const denied = await ssh(["berth@127.0.0.1", "help"], henry.privateKey);
    expect(denied.code).toBe(255);
    expect(denied.stderr).toContain("Permission denied (publickey)");
  });
});
