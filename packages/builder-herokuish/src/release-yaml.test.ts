import { isBerthError } from "@berth/core";
import { describe, expect, it } from "vitest";
import { parseReleaseYaml } from "./release-yaml.js";

describe("parseReleaseYaml", () => {
  it("reads default_process_types and config_vars with plain and quoted scalars", () => {
    const release = parseReleaseYaml(
      [
        "---",
        "addons:",
        "  - heroku-postgresql",
        "config_vars:",
        "  PATH: /app/bin:/usr/local/bin:/usr/bin:/bin",
        "  QUOTED: 'it''s # not a comment'",
        '  ESCAPED: "tab\\there \\"quoted\\""',
        "  EMPTY:",
        "default_process_types:",
        "  web: bundle exec puma -p $PORT # trailing comment",
        "  worker: \"sh -c 'echo hi'\"",
        "",
      ].join("\n"),
    );
    expect(release).toEqual({
      configVars: {
        PATH: "/app/bin:/usr/local/bin:/usr/bin:/bin",
        QUOTED: "it's # not a comment",
        ESCAPED: 'tab\there "quoted"',
        EMPTY: "",
      },
      defaultProcessTypes: { web: "bundle exec puma -p $PORT", worker: "sh -c 'echo hi'" },
    });
  });

  it("accepts empty documents and empty mappings", () => {
    expect(parseReleaseYaml("--- {}\n")).toEqual({ configVars: {}, defaultProcessTypes: {} });
    expect(parseReleaseYaml("")).toEqual({ configVars: {}, defaultProcessTypes: {} });
    expect(parseReleaseYaml("---\naddons: []\ndefault_process_types: {}\n")).toEqual({
      configVars: {},
      defaultProcessTypes: {},
    });
    expect(
      parseReleaseYaml("addons:\n- one\n- two\ndefault_process_types:\n  web: x\n").defaultProcessTypes,
    ).toEqual({
      web: "x",
    });
  });

  it("rejects what it does not understand, naming the line", () => {
    const attempts = [
      "default_process_types:\n  web: |\n    multi\n",
      "default_process_types:\n  Web Server: x\n",
      "config_vars:\n  1BAD: x\n",
      "default_process_types: web\n",
      "default_process_types:\n  web:\n",
      "default_process_types:\n  web: 'unterminated\n",
      "default_process_types:\n  web:\n    nested: x\n",
    ];
    for (const text of attempts) {
      let failure: unknown;
      try {
        parseReleaseYaml(text, "example");
      } catch (error) {
        failure = error;
      }
      expect(isBerthError(failure, "BUILD_FAILED"), text).toBe(true);
      expect((failure as Error).message).toMatch(/^bin\/release of example, line \d+: /);
    }
  });
});
