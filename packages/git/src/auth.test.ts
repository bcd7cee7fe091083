import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basicAuth, createWorld, rawRequest, type World } from "./test/world.js";

let world: World;

beforeAll(async () => {
  world = await createWorld();
});

afterAll(async () => {
  await world?.close();
});

async function nothingCreated(app: string): Promise<void> {
  expect(await world.platform.apps.exists(app)).toBe(false);
  expect(existsSync(join(world.dataDir, "repos", `${app}.git`))).toBe(false);
}

describe("HTTP tokens", () => {
  const refs = (app: string) => `/${app}.git/info/refs?service=git-receive-pack`;

  it("answers 401 with WWW-Authenticate without credentials or with a wrong token", async () => {
    const missing = await rawRequest(world.http.port, "GET", refs("nobody"));
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toBe('Basic realm="Berth", charset="UTF-8"');
    const wrong = await rawRequest(world.http.port, "GET", refs("nobody"), basicAuth("admin", "berth_wrong"));
    expect(wrong.status).toBe(401);
    expect(wrong.headers["www-authenticate"]).toContain("Basic");
    // A real token presented under another user's name is as wrong as a made-up one.
    const otherUser = await rawRequest(
      world.http.port,
      "GET",
      refs("nobody"),
      basicAuth("mallory", world.adminToken),
    );
    expect(otherUser.status).toBe(401);
    await nothingCreated("nobody");
  });

  it("refuses git push with no token and with a wrong token, creating nothing", async () => {
    const dir = await world.repo({ "body.txt": "x\n" });
    const noToken = await world.git(["push", `http://127.0.0.1:${world.http.port}/sneaky.git`, "main"], {
      cwd: dir,
    });
    expect(noToken.code).not.toBe(0);
    expect(noToken.stderr).toMatch(/Authentication failed|could not read Username/);
    const wrongToken = await world.git(
      ["push", world.url("http", "sneaky", { token: "berth_nope" }), "main"],
      {
        cwd: dir,
      },
    );
    expect(wrongToken.code).not.toBe(0);
    expect(wrongToken.stderr).toContain("Authentication failed");
    await nothingCreated("sneaky");
  });

  it("answers 403 to a token scoped to another app and lets it push its own", async () => {
    const { token } = await world.plugin.tokens.create("carol", { apps: ["carols-app"] });
    const dir = await world.repo({ "body.txt": "carol\n" });
    const elsewhere = await rawRequest(
      world.http.port,
      "GET",
      refs("someone-else"),
      basicAuth("carol", token),
    );
    expect(elsewhere.status).toBe(403);
    const push = await world.git(
      ["push", world.url("http", "someone-else", { user: "carol", token }), "main"],
      {
        cwd: dir,
      },
    );
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain("403");
    await nothingCreated("someone-else");

    const own = await world.git(["push", world.url("http", "carols-app", { user: "carol", token }), "main"], {
      cwd: dir,
    });
    expect(own.code, own.stderr).toBe(0);
    expect(await world.proxy.fetch("carols-app")).toEqual({ status: 200, body: "carol" });
    const clone = await world.git(
      [
        "clone",
        "-q",
        world.url("http", "carols-app", { user: "carol", token }),
        join(world.root, "carol-clone"),
      ],
      {},
    );
    expect(clone.code, clone.stderr).toBe(0);
  });

  it("stops accepting a revoked token", async () => {
    const { token, record } = await world.plugin.tokens.create("dave", { apps: ["daves-app"] });
    const before = await rawRequest(world.http.port, "GET", refs("daves-app"), basicAuth("dave", token));
    expect(before.status).toBe(200);
    expect(await world.plugin.tokens.revoke(record.id)).toBe(true);
    const after = await rawRequest(world.http.port, "GET", refs("daves-app"), basicAuth("dave", token));
    expect(after.status).toBe(401);
    expect(JSON.stringify(await world.plugin.tokens.list())).not.toContain(token);
  });

  it("does not serve clones of apps that do not exist", async () => {
    const clone = await rawRequest(
      world.http.port,
      "GET",
      "/ghost.git/info/refs?service=git-upload-pack",
      basicAuth("admin", world.adminToken),
    );
    expect(clone.status).toBe(404);
    await nothingCreated("ghost");
  });
});

describe("SSH keys", () => {
  it("refuses an unknown key, creating nothing", async () => {
    const stranger = await world.newKey("stranger");
    const dir = await world.repo({ "body.txt": "x\n" });
    const push = await world.git(["push", world.url("ssh", "intruded"), "main"], {
      cwd: dir,
      transport: "ssh",
      key: stranger.privateKey,
    });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain("Permission denied (publickey)");
    await nothingCreated("intruded");
  });

  it("refuses a key scoped to another app and lets it push its own", async () => {
    const erin = await world.newKey("erin");
    await world.plugin.keys.add("erin", erin.publicKey, { apps: ["erins-app"] });
    const dir = await world.repo({ "body.txt": "erin\n" });
    const elsewhere = await world.git(["push", world.url("ssh", "not-erins"), "main"], {
      cwd: dir,
      transport: "ssh",
      key: erin.privateKey,
    });
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toContain("erin may not access not-erins");
    await nothingCreated("not-erins");
    const own = await world.git(["push", world.url("ssh", "erins-app"), "main"], {
      cwd: dir,
      transport: "ssh",
      key: erin.privateKey,
    });
    expect(own.code, own.stderr).toBe(0);
  });

  it("stops accepting a removed key", async () => {
    const frank = await world.newKey("frank");
    await world.plugin.keys.add("frank", frank.publicKey);
    const dir = await world.repo({ "body.txt": "frank\n" });
    expect(
      (
        await world.git(["push", world.url("ssh", "franks-app"), "main"], {
          cwd: dir,
          transport: "ssh",
          key: frank.privateKey,
        })
      ).code,
    ).toBe(0);
    expect(await world.plugin.keys.remove("frank")).toBe(true);
    const after = await world.git(["push", world.url("ssh", "franks-app"), "main"], {
      cwd: dir,
      transport: "ssh",
      key: frank.privateKey,
    });
    expect(after.code).not.toBe(0);
    expect(after.stderr).toContain("Permission denied (publickey)");
  });

  it("lists keys with OpenSSH fingerprints", async () => {
    const { run } = await import("./test/world.js");
    const listed = await world.plugin.keys.list();
    const admin = listed.find((record) => record.name === "admin");
    const keygen = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${world.adminKey}.pub`]);
    expect(keygen.stdout.split(" ")[1]).toBe(admin?.fingerprint);
    await expect(
      world.plugin.keys.add("admin-again", (await world.newKey("again")).privateKey),
    ).rejects.toThrow(/Invalid public key/);
  });
});

describe("without auto-creation", () => {
  it("refuses a push to an unknown app and accepts one to a created app", async () => {
    const strict = await createWorld({ autoCreate: false });
    try {
      const dir = await strict.repo({ "body.txt": "strict\n" });
      for (const transport of ["http", "ssh"] as const) {
        const push = await strict.git(["push", strict.url(transport, "unknown"), "main"], {
          cwd: dir,
          transport,
        });
        expect(push.code).not.toBe(0);
        expect(push.stderr).toMatch(/App unknown does not exist|404/);
      }
      expect(await strict.platform.apps.exists("unknown")).toBe(false);
      await strict.platform.apps.create("known");
      const push = await strict.git(["push", strict.url("ssh", "known"), "main"], {
        cwd: dir,
        transport: "ssh",
      });
      expect(push.code, push.stderr).toBe(0);
    } finally {
      await strict.close();
    }
  });
});
