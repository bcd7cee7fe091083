import { describe, expect, it } from "vitest";
import { parseAppJson } from "./app-json.js";
import { parseProcfile } from "./procfile.js";

describe("parseProcfile", () => {
  it("reads types, skips comments and blank lines, splits on the first colon", () => {
    const types = parseProcfile(
      "# comment\n\nweb: node server.js --url http://x:1\r\nworker:   sh -c 'a: b'\n",
    );
    expect(types).toEqual({ web: "node server.js --url http://x:1", worker: "sh -c 'a: b'" });
  });

  it.each([
    ["web node", 1, /expected "type: command"/],
    ["web: a\nweb: b", 2, /already defined on line 1/],
    ["\nWeb: a", 2, /Invalid process type/],
    ["web:", 1, /no command/],
  ])("rejects %j on line %d", (text, line, message) => {
    expect(() => parseProcfile(text)).toThrow(message);
    try {
      parseProcfile(text);
    } catch (error) {
      expect(error).toMatchObject({ code: "PROCFILE_INVALID", details: { line } });
    }
  });
});

describe("parseAppJson", () => {
  it("reads Dokku's format and ignores unknown keys", () => {
    const appJson = parseAppJson(
      JSON.stringify({
        name: "x",
        logo: "ignored",
        scripts: { dokku: { predeploy: "touch /app/ready", postdeploy: "echo done" }, postdeploy: "seed" },
        formation: { web: { quantity: 2 }, worker: { quantity: 1, max_parallel: 1 } },
        env: {
          SECRET: { generator: "secret" },
          MODE: { value: "prod", required: false },
          DB: { required: true },
        },
        healthchecks: { web: [{ type: "startup", path: "/health", content: "ok", attempts: 2 }] },
        cron: [{ schedule: "*/5 * * * *", command: "echo tick" }],
      }),
    );
    expect(appJson.formation).toEqual({ web: { quantity: 2 }, worker: { quantity: 1, maxParallel: 1 } });
    expect(appJson.env?.SECRET).toMatchObject({ generator: "secret", required: true });
    expect(appJson.healthchecks?.web?.[0]).toMatchObject({
      path: "/health",
      content: "ok",
      attempts: 2,
      timeout: 5,
    });
    expect(appJson.cron).toEqual([{ schedule: "*/5 * * * *", command: "echo tick" }]);
    expect(appJson.scripts?.dokku?.predeploy).toBe("touch /app/ready");
  });

  it.each([
    ['{"formation": {"web": {"quantity": -1}}}', "formation.web.quantity"],
    ['{"healthchecks": {"web": [{"attempts": "3"}]}}', "healthchecks.web[0].attempts"],
    ['{"healthchecks": {"web": {}}}', "healthchecks.web"],
    ['{"env": {"1BAD": {}}}', "env.1BAD"],
    ['{"cron": [{"schedule": "never", "command": "x"}]}', "cron[0].schedule"],
    ['{"scripts": {"dokku": {"predeploy": 1}}}', "scripts.dokku.predeploy"],
    ["[]", ""],
  ])("names the field of %s", (text, field) => {
    expect(() => parseAppJson(text)).toThrow(
      expect.objectContaining({ code: "APP_JSON_INVALID", details: { file: "app.json", field } }),
    );
  });

  it("gives the line of a JSON syntax error", () => {
    expect(() => parseAppJson('{\n  "name": "x",\n  oops\n}')).toThrow(/line 3/);
  });
});

describe("app.json syntax errors", () => {
  it.each([
    ['{\n  "a": 1,\n}', "line 3, column 1"],
    ['{\n  "scripts": {\n    "dokku": \n  }\n}', "line 4, column 3"],
    ['{ "a": tru }', "line 1, column 8"],
    ['{ "a": "x\ny" }', "line 1, column 10"],
    ["[1, 2", "line 1, column 6"],
  ])("locates the mistake in %j", (text, where) => {
    expect(() => parseAppJson(text)).toThrow(
      expect.objectContaining({ message: expect.stringContaining(where) }),
    );
  });
});
