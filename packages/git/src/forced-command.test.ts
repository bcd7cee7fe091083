import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authorizedKeysLine } from "./authorized-keys.js";
import { createWorld, run, type World } from "./test/world.js";

let world: World;
let bin: string;
let fakeSshd: string;

beforeAll(async () => {
  world = await createWorld();
  // The bin entry, bundled fresh from source (dist may be stale while tests run).
  bin = join(import.meta.dirname, "..", "node_modules", ".cache", "berth-git-test", "bin.js");
  const built = await run(join(import.meta.dirname, "..", "..", "..", "node_modules", ".bin", "esbuild"), [
    join(import.meta.dirname, "bin.ts"),
    "--bundle",
    "--platform=node",
    "--format=esm",
    "--packages=external",
    `--outfile=${bin}`,
  ]);
  if (built.code !== 0) throw new Error(built.stderr);
  await chmod(bin, 0o755);
  // Stands in for sshd: a key with a forced command runs it with `sh -c`, the client's command in
  // SSH_ORIGINAL_COMMAND. git (GIT_SSH_VARIANT=simple) calls it as `fake-sshd HOST COMMAND`.
  fakeSshd = join(world.root, "bin", "fake-sshd");
  await mkdir(join(world.root, "bin"), { recursive: true });
  await writeFile(
    fakeSshd,
    '#!/bin/sh\nfor last; do :; done\nexport SSH_ORIGINAL_COMMAND="$last"\nexec sh -c "$FORCED"\n',
  );
  await chmod(fakeSshd, 0o755);
});

afterAll(async () => {
  await world?.close();
});

/** The forced command of an authorized_keys line, unescaped as sshd does. */
function forcedCommand(line: string): string {
  const match = /^command="((?:[^"\\]|\\.)*)",/.exec(line);
  if (!match?.[1]) throw new Error(`no forced command in ${line}`);
  return match[1].replace(/\\(.)/g, "$1");
}

describe("the package in plain Node", () => {
  it("loads as ESM outside the test runner (ssh2 is CommonJS) and serves SSH", async () => {
    const bundle = join(import.meta.dirname, "..", "node_modules", ".cache", "berth-git-test", "index.js");
    const built = await run(join(import.meta.dirname, "..", "..", "..", "node_modules", ".bin", "esbuild"), [
      join(import.meta.dirname, "index.ts"),
      "--bundle",
      "--platform=node",
      "--format=esm",
      "--packages=external",
      `--outfile=${bundle}`,
    ]);
    expect(built.code, built.stderr).toBe(0);
    const script = `
      const { Platform } = await import("@berth/core");
      const { git } = await import(${JSON.stringify(bundle)});
      const platform = new Platform({ dataDir: ${JSON.stringify(join(world.root, "plain-node"))} });
      const plugin = git();
      platform.use(plugin);
      const ssh = await plugin.listenSsh();
      const key = (await plugin.keys.add("k", ${JSON.stringify((await world.newKey("plain")).publicKey)})).fingerprint;
      console.log(ssh.port > 0, key.startsWith("SHA256:"));
      await plugin.close();`;
    const result = await run(process.execPath, ["--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, ".."),
    });
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toBe("true true");
  });
});

describe("authorized_keys lines", () => {
  it("force the Berth shell and turn off forwarding, agent, X11 and PTY", async () => {
    const key = await world.newKey("ivan");
    const line = authorizedKeysLine({
      keyName: "ivan",
      publicKey: `${key.publicKey}`,
      socketPath: "/var/lib/berth/git/berth.sock",
    });
    const [type, blob] = key.publicKey.split(" ");
    expect(line).toBe(
      `command="berth-git-shell --socket /var/lib/berth/git/berth.sock ivan",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty ${type} ${blob} ivan`,
    );
    const quoted = authorizedKeysLine({
      keyName: "ivan",
      publicKey: key.publicKey,
      socketPath: '/srv/my "odd" dir/berth.sock',
      command: "/opt/berth/bin/berth-git-shell",
    });
    expect(forcedCommand(quoted)).toBe(
      `/opt/berth/bin/berth-git-shell --socket '/srv/my "odd" dir/berth.sock' ivan`,
    );
    expect(() =>
      authorizedKeysLine({ keyName: 'x" evil', publicKey: key.publicKey, socketPath: "/s" }),
    ).toThrow(/Invalid key name/);
    expect(() =>
      authorizedKeysLine({ keyName: "x", publicKey: "ssh-ed25519 AAAA\nevil", socketPath: "/s" }),
    ).toThrow(/Invalid public key/);
  });
});

describe("berth-git-shell as a forced command", () => {
  const env = async (keyName: string) => ({
    ...world.env,
    GIT_SSH: fakeSshd,
    GIT_SSH_VARIANT: "simple",
    FORCED: forcedCommand(await world.plugin.authorizedKeysLine(keyName, { command: bin })),
  });

  it("pushes, deploys and clones through the running Berth process", async () => {
    const dir = await world.repo({ "body.txt": "via sshd\n" });
    const push = await run("git", ["push", "berth@localhost:via-sshd.git", "main"], {
      cwd: dir,
      env: await env("admin"),
    });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain("remote: -----> Building via-sshd");
    expect(await world.proxy.fetch("via-sshd")).toEqual({ status: 200, body: "via sshd" });
    const clone = await run(
      "git",
      ["clone", "-q", "berth@localhost:via-sshd", join(world.root, "via-sshd")],
      {
        env: await env("admin"),
      },
    );
    expect(clone.code, clone.stderr).toBe(0);
  });

  it("runs Berth commands with the key's identity and refuses what the key may not do", async () => {
    world.plugin.commands.register("test:whoami", ({ user, stdout, stdin }) => {
      return new Promise<number>((resolve) => {
        let input = "";
        stdin.on("data", (chunk: Buffer) => {
          input += chunk.toString();
        });
        stdin.on("end", () => {
          stdout.write(`${user.user} ${user.admin ? "admin" : user.apps.join(",")} ${input.trim()}\n`);
          resolve(0);
        });
      });
    });
    const judy = await world.newKey("judy");
    await world.plugin.keys.add("judy", judy.publicKey, { apps: ["judys-app"] });
    const whoami = await run(fakeSshd, ["localhost", "test:whoami"], {
      env: await env("judy"),
      input: "from stdin\n",
    });
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.stdout).toBe("judy judys-app from stdin\n");
    const admin = await run(fakeSshd, ["localhost", "keys:list"], { env: await env("judy") });
    expect(admin.code).toBe(1);
    const dir = await world.repo({ "body.txt": "x\n" });
    const elsewhere = await run("git", ["push", "berth@localhost:not-judys.git", "main"], {
      cwd: dir,
      env: await env("judy"),
    });
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toContain("judy may not access not-judys");
    expect(await world.platform.apps.exists("not-judys")).toBe(false);
    const hostile = await run(fakeSshd, ["localhost", "git-upload-pack '../../etc'"], {
      env: await env("judy"),
    });
    expect(hostile.code).not.toBe(0);
    expect(hostile.stderr).toContain("Invalid app name");
  });

  it("refuses a key that was removed after its line was written", async () => {
    const kate = await world.newKey("kate");
    await world.plugin.keys.add("kate", kate.publicKey);
    const kateEnv = await env("kate");
    await world.plugin.keys.remove("kate");
    const result = await run(fakeSshd, ["localhost", "help"], { env: kateEnv });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("This key is not (or no longer) allowed");
  });

  it("refuses a push made to the repository directly, outside Berth", async () => {
    const dir = await world.repo({ "body.txt": "sneaky\n" });
    const push = await run("git", ["push", join(world.dataDir, "repos", "via-sshd.git"), "main:sneaky"], {
      cwd: dir,
      env: world.env,
    });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain("This repository accepts pushes only through Berth.");
  });
});
