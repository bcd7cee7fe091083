import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, resolveConfig } from "./config.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "berth-config-test-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("config", () => {
  it("applies defaults and resolves paths against the file's directory", async () => {
    const file = join(dir, "berth.config.json");
    await writeFile(
      file,
      JSON.stringify({ dataDir: "state", proxy: { httpPort: 8080 }, domain: "Apps.Example.COM" }),
    );
    const config = await loadConfig(file);
    expect(config.dataDir).toBe(join(dir, "state"));
    expect(config.api.socket).toBe(join(dir, "state", "berth.sock"));
    expect(config.proxy.httpPort).toBe(8080);
    expect(config.domain).toBe("apps.example.com");
    expect(config.defaults).toMatchObject({ scheduler: "docker", proxy: "nginx" });
    expect(config.file).toBe(file);
  });

  it("loads .mjs configs with a default export", async () => {
    const file = join(dir, "berth.config.mjs");
    await writeFile(
      file,
      `export default { git: { sshPort: 2022 }, buildpacks: ["https://example.com/bp.git"] };\n`,
    );
    const config = await loadConfig(file);
    expect(config.git.sshPort).toBe(2022);
    expect(config.buildpacks).toEqual(["https://example.com/bp.git"]);
  });

  it("refuses unknown fields, bad ports, bad domains and broken JSON with the file and the field", async () => {
    const cases: Array<[unknown, string]> = [
      [{ dataDri: "/x" }, "dataDri is not a known setting"],
      [{ proxy: { httpPort: 70000 } }, "proxy.httpPort must be a port"],
      [{ api: { token: "short" } }, "api.token must have at least 16 characters"],
      [{ domain: "bad domain;" }, "domain must be a host name"],
      [{ disable: ["everything"] }, "disable must list built-in plugins"],
      [{ plugins: [{ module: "" }] }, "plugins[0].module must be a non-empty string"],
      [{ defaults: { builder: "Evil Builder" } }, "defaults.builder must be a plugin name"],
    ];
    for (const [raw, message] of cases) {
      expect(() => resolveConfig(raw, "/etc/berth.config.json")).toThrow(message);
    }
    const broken = join(dir, "broken.json");
    await writeFile(broken, "{ nope");
    await expect(loadConfig(broken)).rejects.toThrow(`${broken} is not valid JSON`);
    await expect(loadConfig(join(dir, "missing.json"))).rejects.toThrow("does not exist");
  });
});
