import { describe, expect, it } from "vitest";
import { CommandRegistry, splitCommandLine } from "./commands.js";
import { parseExecCommand } from "./exec-command.js";
import { deployBranchRef } from "./receiver.js";
import { ZERO_REV } from "./repositories.js";

const REV = "1".repeat(40);

describe("parseExecCommand", () => {
  it("accepts what git sends for an app, in each spelling", () => {
    for (const path of ["app", "app.git", "/app.git", "/app", "app.git/", "/app/"]) {
      expect(parseExecCommand(`git-receive-pack '${path}'`)).toEqual({
        kind: "git",
        service: "receive-pack",
        app: "app",
      });
    }
    expect(parseExecCommand("git upload-pack 'my-app'")).toEqual({
      kind: "git",
      service: "upload-pack",
      app: "my-app",
    });
  });

  it("refuses any repository path that is not an app name", () => {
    for (const path of [
      "../x",
      "a;id",
      "%2e%2e/x",
      "App",
      "x.git/../../etc",
      "a/b",
      "",
      "//app",
      `a${"b".repeat(299)}`,
    ]) {
      expect(() => parseExecCommand(`git-upload-pack '${path}'`), path).toThrow(/Invalid app name/);
    }
    for (const command of [
      "git-upload-archive 'app'",
      "git-receive-pack app",
      "git-receive-pack 'a' 'b'",
      "git-receive-pack 'a'\\''b'",
    ]) {
      expect(() => parseExecCommand(command), command).toThrow();
    }
  });

  it("treats anything else as a Berth command, split without expansion", () => {
    expect(parseExecCommand(`config:set app "A=b c" 'D=$HOME' E=\\$x`)).toEqual({
      kind: "command",
      words: ["config:set", "app", "A=b c", "D=$HOME", "E=$x"],
    });
    expect(() => parseExecCommand("   ")).toThrow(/No shell here/);
    expect(() => parseExecCommand("bad\0command")).toThrow(/Invalid command/);
  });
});

describe("splitCommandLine", () => {
  it("splits like a shell and refuses unbalanced quotes", () => {
    expect(splitCommandLine(`a  'b c'"d"\\ e ""`)).toEqual(["a", "b cd e", ""]);
    expect(splitCommandLine(`"x \\" y"`)).toEqual(['x " y']);
    expect(() => splitCommandLine(`'open`)).toThrow(/Unbalanced/);
  });
});

describe("deployBranchRef", () => {
  const update = (ref: string, newRev = REV) => ({ oldRev: ZERO_REV, newRev, ref });

  it("is the configured branch when set", () => {
    expect(deployBranchRef("production", new Map(), [update("refs/heads/main")])).toBe(
      "refs/heads/production",
    );
  });

  it("is main by default, and master only when there is no main", () => {
    expect(deployBranchRef(undefined, new Map(), [update("refs/heads/main")])).toBe("refs/heads/main");
    expect(deployBranchRef(undefined, new Map(), [update("refs/heads/master")])).toBe("refs/heads/master");
    expect(
      deployBranchRef(undefined, new Map([["refs/heads/main", REV]]), [update("refs/heads/master")]),
    ).toBe("refs/heads/main");
    expect(
      deployBranchRef(undefined, new Map(), [update("refs/heads/master"), update("refs/heads/main")]),
    ).toBe("refs/heads/main");
    expect(deployBranchRef(undefined, new Map(), [update("refs/heads/feature")])).toBe("refs/heads/main");
  });
});

describe("CommandRegistry", () => {
  it("rejects bad and duplicate names and reports thrown errors as exit code 1", async () => {
    const registry = new CommandRegistry();
    expect(() => registry.register("git-receive-pack", () => 0)).toThrow(/Invalid command name/);
    expect(() => registry.register("Bad Name", () => 0)).toThrow(/Invalid command name/);
    registry.register("boom", () => {
      throw new Error("exploded");
    });
    expect(() => registry.register("boom", () => 0)).toThrow(/already registered/);
    let errors = "";
    const { PassThrough, Writable } = await import("node:stream");
    const sink = new Writable({
      write(chunk, _encoding, callback) {
        errors += chunk.toString();
        callback();
      },
    });
    const code = await registry.run(["boom"], {
      user: { user: "u", admin: true, apps: [], via: "test" },
      stdin: new PassThrough(),
      stdout: sink,
      stderr: sink,
      signal: new AbortController().signal,
    });
    expect(code).toBe(1);
    expect(errors).toContain("exploded");
  });
});
