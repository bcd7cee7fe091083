import { isBerthError } from "@berth/core";
import { describe, expect, it } from "vitest";
import { readDockerfileSettings, validateDockerfilePath } from "./settings.js";

describe("builder-dockerfile settings", () => {
  it("defaults to Dockerfile and no build args", () => {
    expect(readDockerfileSettings(undefined)).toEqual({ dockerfilePath: "Dockerfile", buildArgs: [] });
    expect(readDockerfileSettings({ plugins: {} })).toEqual({ dockerfilePath: "Dockerfile", buildArgs: [] });
  });

  it("accepts a nested path inside the source and config var names", () => {
    expect(
      readDockerfileSettings({
        plugins: {
          "builder-dockerfile": {
            dockerfilePath: "services/web/Dockerfile.prod",
            buildArgs: ["NODE_ENV", "NODE_ENV"],
          },
        },
      }),
    ).toEqual({ dockerfilePath: "services/web/Dockerfile.prod", buildArgs: ["NODE_ENV"] });
  });

  it("refuses paths that leave the source or are not plain relative paths", () => {
    for (const hostile of [
      "",
      "../x",
      "/etc/passwd",
      "a/../../x",
      "./Dockerfile",
      "a//b",
      "a/",
      "a\0b",
      "a b",
      "$(id)",
    ]) {
      let error: unknown;
      try {
        validateDockerfilePath(hostile);
      } catch (caught) {
        error = caught;
      }
      expect(isBerthError(error, "INVALID_SETTING"), JSON.stringify(hostile)).toBe(true);
    }
  });

  it("refuses build args that are not a list of config var names", () => {
    expect(() =>
      readDockerfileSettings({ plugins: { "builder-dockerfile": { buildArgs: "NODE_ENV" } } }),
    ).toThrow(/list of config var names/);
    expect(() =>
      readDockerfileSettings({ plugins: { "builder-dockerfile": { buildArgs: ["1BAD"] } } }),
    ).toThrow(/Invalid config key/);
  });
});
