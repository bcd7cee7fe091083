import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitPlugin } from "./plugin.js";
import { createWorld, run, type World } from "./test/world.js";

let world: World;

beforeAll(async () => {
  world = await createWorld();
});

afterAll(async () => {
  await world?.close();
});

describe("repositories follow their apps", () => {
  it("moves the repository when the app is renamed and removes it when the app is destroyed", async () => {
    const dir = await world.repo({ "body.txt": "lifecycle\n" });
    expect((await world.git(["push", world.url("http", "old-name"), "main"], { cwd: dir })).code).toBe(0);
    const oldRepo = join(world.dataDir, "repos", "old-name.git");
    expect(existsSync(oldRepo)).toBe(true);

    await world.platform.apps.rename("old-name", "new-name");
    expect(existsSync(oldRepo)).toBe(false);
    expect(existsSync(join(world.dataDir, "repos", "new-name.git"))).toBe(true);
    const rev = await world.commit(dir, { "body.txt": "renamed\n" });
    const push = await world.git(["push", world.url("ssh", "new-name"), "main"], {
      cwd: dir,
      transport: "ssh",
    });
    expect(push.code, push.stderr).toBe(0);
    expect((await world.platform.releases.current("new-name"))?.source.rev).toBe(rev);

    await world.platform.apps.destroy("new-name");
    expect(existsSync(join(world.dataDir, "repos", "new-name.git"))).toBe(false);
  });
});

describe("HTTPS", () => {
  it("serves pushes and clones over TLS", async () => {
    const key = join(world.root, "tls.key");
    const cert = join(world.root, "tls.crt");
    const made = await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ]);
    expect(made.code, made.stderr).toBe(0);
    const https = await world.plugin.listenHttp({
      tls: { key: await readFile(key), cert: await readFile(cert) },
    });
    try {
      const url = `https://admin:${world.adminToken}@127.0.0.1:${https.port}/secure.git`;
      const dir = await world.repo({ "body.txt": "over tls\n" });
      const push = await world.git(["-c", `http.sslCAInfo=${cert}`, "push", url, "main"], { cwd: dir });
      expect(push.code, push.stderr).toBe(0);
      expect(push.stderr).toContain("remote: -----> Building secure");
      const untrusted = await world.git(["push", url, "main"], { cwd: dir });
      expect(untrusted.code).not.toBe(0);
      const clone = await world.git([
        "-c",
        `http.sslCAInfo=${cert}`,
        "clone",
        "-q",
        url,
        join(world.root, "secure"),
      ]);
      expect(clone.code, clone.stderr).toBe(0);
    } finally {
      await https.close();
    }
  });
});

describe("secrets at rest", () => {
  it("keeps only token hashes, in files only Berth's user can read", async () => {
    const { token } = await world.plugin.tokens.create("laura", { apps: ["lauras-app"] });
    const file = join(world.dataDir, "git", "tokens.json");
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(token);
    expect(text).not.toContain(world.adminToken);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(world.dataDir, "git", "keys.json"))).mode & 0o777).toBe(0o600);
    expect((await stat(join(world.dataDir, "git"))).mode & 0o777).toBe(0o700);
    expect((await stat(world.plugin.socketPath)).mode & 0o777).toBe(0o600);
  });

  it("generates the SSH host key once and keeps it across restarts", async () => {
    const keyFile = join(world.dataDir, "git", "ssh_host_ed25519_key");
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const scan = async (port: number) =>
      (
        await run("ssh-keyscan", ["-t", "ed25519", "-p", String(port), "127.0.0.1"], { env: world.env })
      ).stdout
        .trim()
        .split(" ")
        .slice(1)
        .join(" ");
    const before = await scan(world.ssh.port);
    expect(before).toMatch(/^ssh-ed25519 AAAA/);
    expect(`${before.split(" ")[0]} ${before.split(" ")[1]}`).toBe(
      (await readFile(`${keyFile}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" "),
    );
    // A second plugin on the same data dir (a restarted daemon) serves the same host key.
    const { Platform } = await import("@berth/core");
    const restarted = new GitPlugin({ socketPath: join(world.root, "restarted.sock") });
    new Platform({ dataDir: world.dataDir }).use(restarted);
    const ssh = await restarted.listenSsh();
    try {
      expect(await scan(ssh.port)).toBe(before);
    } finally {
      await restarted.close();
    }
  });

  it("refuses a socket directory that is a symlink", async () => {
    const { Platform } = await import("@berth/core");
    const { mkdir, symlink } = await import("node:fs/promises");
    await mkdir(join(world.root, "elsewhere"));
    await symlink(join(world.root, "elsewhere"), join(world.root, "planted"));
    const planted = new GitPlugin({ socketPath: join(world.root, "planted", "berth.sock") });
    new Platform({ dataDir: join(world.root, "planted-data") }).use(planted);
    await expect(planted.start()).rejects.toThrow(/not a directory owned by this user/);
  });

  it("refuses to share a hook socket with a live Berth process", async () => {
    const { Platform } = await import("@berth/core");
    const second = new GitPlugin();
    new Platform({ dataDir: world.dataDir }).use(second);
    await expect(second.start()).rejects.toThrow(/Another Berth process serves/);
  });
});
