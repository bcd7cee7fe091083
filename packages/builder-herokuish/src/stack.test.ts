import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { isBerthError } from "@berth/core";
import { afterAll, describe, expect, it } from "vitest";
import { buildStackImage } from "./stack.js";
import { docker, removeDir, runOnce, temporary } from "./test-support/index.js";

const run = promisify(execFile);
const image = `berth-test-herokuish-stack:${process.pid % 10000}`;
const cleanup: string[] = [];

afterAll(async () => {
  await docker
    .getImage(image)
    .remove({ force: true })
    .catch(() => {});
  for (const dir of cleanup) await removeDir(dir);
});

describe("buildStackImage", () => {
  it("builds a stack with what buildpacks expect, trusting the extra CA certificates it is given", async () => {
    const certificates = await temporary("ca");
    cleanup.push(certificates);
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=Berth Test Corporate CA",
      "-days",
      "2",
      "-keyout",
      join(certificates, "corporate.key"),
      "-out",
      join(certificates, "corporate.crt"),
    ]);
    const progress: string[] = [];
    const started = Date.now();
    await buildStackImage({
      image,
      caCertificatesDir: certificates,
      onOutput: (chunk) => progress.push(chunk),
    });
    // The debootstrap'd rootfs is cached: only the thin layer is built.
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(progress.join("")).toContain(`-----> Building ${image}`);
    const pem = (await readFile(join(certificates, "corporate.crt"), "utf8")).trim().split("\n")[1] ?? "";
    const check = await runOnce(image, [
      "bash",
      "-c",
      [
        'grep -c -F -- "$1" /etc/ssl/certs/ca-certificates.crt',
        "for tool in bash tar gzip curl git find runuser setpriv adduser useradd httpd xz; do command -v $tool >/dev/null || echo missing $tool; done",
        "stat -c %a /tmp",
        "id berth",
        "test -x /start && test -x /exec && echo scripts",
        'echo "PATH=$PATH STACK=$STACK"',
      ].join("; "),
      "check",
      pem,
    ]);
    expect(check.exitCode).toBe(0);
    const lines = check.output.trim().split("\n");
    expect(lines[0]).toBe("1");
    expect(check.output).not.toContain("missing");
    expect(lines).toContain("1777");
    expect(check.output).toContain("uid=32767(berth) gid=32767(berth)");
    expect(lines).toContain("scripts");
    expect(check.output).toContain(
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin STACK=berth-bookworm",
    );
  });

  it("refuses settings that would reach the shell script unchecked", async () => {
    for (const options of [
      { suite: "bookworm; rm -rf /" },
      { packages: ["curl,evil;"] },
      { image: "Bad Image" },
    ]) {
      const failure = await buildStackImage(options).catch((error: unknown) => error);
      expect(isBerthError(failure, "INVALID_SETTING"), JSON.stringify(options)).toBe(true);
    }
  });
});
