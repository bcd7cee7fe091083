import { describe, expect, it } from "vitest";
import { isBerthError } from "./errors.js";
import {
  validateAppName,
  validateConfigKey,
  validateConfigValue,
  validateDomain,
  validatePort,
  validateProcessType,
} from "./validation.js";

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return isBerthError(error) ? error.code : "not-a-berth-error";
  }
  return undefined;
}

describe("validation", () => {
  it.each(["../etc", "App", "a b", "a;id", "a".repeat(64), "", "1abc", "-a", "a_b", "a\n"])(
    "rejects app name %j",
    (name) => expect(codeOf(() => validateAppName(name))).toBe("INVALID_APP_NAME"),
  );

  it.each(["a", "hello", "my-app-2", "a".repeat(63)])("accepts app name %j", (name) => {
    expect(validateAppName(name)).toBe(name);
  });

  it.each(["A-B", "1A", "", "A B", "A=B", "$A"])("rejects config key %j", (key) =>
    expect(codeOf(() => validateConfigKey(key))).toBe("INVALID_CONFIG_KEY"),
  );

  it("accepts any UTF-8 config value except NUL", () => {
    for (const value of ["$(touch /tmp/x)", "`id`", `"'quoted'"`, "line1\nline2", "ünïcødé ✓", ""]) {
      expect(validateConfigValue("K", value)).toBe(value);
    }
    expect(codeOf(() => validateConfigValue("K", "a\0b"))).toBe("INVALID_CONFIG_VALUE");
    expect(codeOf(() => validateConfigValue("K", "\ud800"))).toBe("INVALID_CONFIG_VALUE");
  });

  it.each([
    "x.com;include /etc/passwd",
    "a{b",
    "a{b}",
    "x.com\n",
    "..",
    "a".repeat(300),
    "$host",
    "*.*.x",
    "",
    "-a.com",
    "a..b",
    "a b.com",
  ])("rejects domain %j", (domain) => expect(codeOf(() => validateDomain(domain))).toBe("INVALID_DOMAIN"));

  it("accepts and lower-cases host names, with a leading wildcard", () => {
    expect(validateDomain("App.Example.COM")).toBe("app.example.com");
    expect(validateDomain("*.example.com")).toBe("*.example.com");
    expect(validateDomain("localhost")).toBe("localhost");
  });

  it.each([0, 70000, -1, 1.5, "80a", Number.NaN])("rejects port %j", (port) =>
    expect(codeOf(() => validatePort(port))).toBe("INVALID_PORT"),
  );

  it("accepts ports 1-65535", () => {
    expect(validatePort(1)).toBe(1);
    expect(validatePort("65535")).toBe(65535);
  });

  it("checks process types", () => {
    expect(validateProcessType("web_2")).toBe("web_2");
    expect(codeOf(() => validateProcessType("Web"))).toBe("INVALID_PROCESS_TYPE");
  });
});
