import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BerthError } from "@berth/core";

/** The shell script both `buildStackImage()` and `scripts/setup-host --stack` run. */
export const BUILD_STACK_SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "stack",
  "build-stack.sh",
);

export interface BuildStackImageOptions {
  /** Debian suite; default `bookworm`. */
  suite?: string;
  /** Image to build; default `berth/stack:<suite>`. */
  image?: string;
  /** Debian mirror debootstrap reads from; default `http://deb.debian.org/debian`. */
  mirror?: string;
  /** Where the debootstrap'd rootfs tarball is cached; default `/var/cache/berth`. */
  cacheDir?: string;
  /** Extra Debian packages for the stack. */
  packages?: string[];
  /**
   * Directory of extra CA certificates (`*.crt`) the stack trusts (a corporate proxy's, a private registry's);
   * default `/usr/local/share/ca-certificates`, the host's own extra certificates. `null` adds none.
   */
  caCertificatesDir?: string | null;
  /** Debootstrap again even when a cached rootfs exists. */
  refresh?: boolean;
  /** Docker socket; default the CLI's default. */
  socketPath?: string;
  /** Progress lines as they happen. */
  onOutput?: (chunk: string) => void;
  signal?: AbortSignal;
}

const SUITE = /^[a-z][a-z0-9-]{1,30}$/;
const PACKAGE = /^[a-z0-9][a-z0-9.+-]{0,100}$/;
const IMAGE = /^[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$/;

/**
 * Builds `berth/stack:<suite>`: a debootstrap'd Debian minbase with bash, coreutils, findutils, tar, gzip, curl,
 * git, ca-certificates, adduser/passwd, util-linux (runuser, setpriv) and busybox, `/tmp` 1777, the build user,
 * the extra CA certificates, `/start`, `/exec` and the lifecycle scripts. The rootfs is debootstrap'd once and
 * cached; later builds reuse it and take seconds. Needs root, debootstrap and the Docker CLI.
 */
export async function buildStackImage(options: BuildStackImageOptions = {}): Promise<{ image: string }> {
  const suite = options.suite ?? "bookworm";
  const image = options.image ?? `berth/stack:${suite}`;
  const invalid = (what: string, value: string) =>
    new BerthError("INVALID_SETTING", `Invalid stack ${what} ${JSON.stringify(value)}.`, {
      details: { value },
    });
  if (!SUITE.test(suite)) throw invalid("suite", suite);
  if (!IMAGE.test(image)) throw invalid("image name", image);
  for (const name of options.packages ?? []) if (!PACKAGE.test(name)) throw invalid("package", name);
  if (options.mirror !== undefined && !/^(https?|file):\/\/[^\s'"]+$/.test(options.mirror)) {
    throw invalid("mirror", options.mirror);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BERTH_STACK_SUITE: suite,
    BERTH_STACK_IMAGE: image,
    ...(options.mirror ? { BERTH_STACK_MIRROR: options.mirror } : {}),
    ...(options.cacheDir ? { BERTH_STACK_CACHE: options.cacheDir } : {}),
    ...(options.packages?.length ? { BERTH_STACK_PACKAGES: options.packages.join(",") } : {}),
    ...(options.caCertificatesDir !== undefined
      ? { BERTH_STACK_CA_DIR: options.caCertificatesDir ?? "" }
      : {}),
    ...(options.refresh ? { BERTH_STACK_REBUILD: "1" } : {}),
    ...(options.socketPath ? { DOCKER_HOST: `unix://${options.socketPath}` } : {}),
  };
  let log = "";
  const exitCode = await new Promise<number>((resolve, reject) => {
    const child = spawn("bash", [BUILD_STACK_SCRIPT], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const collect = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      log = (log + text).slice(-4000);
      options.onOutput?.(text);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
  if (exitCode !== 0) {
    throw new BerthError(
      "BUILD_FAILED",
      `Building stack image ${image} failed (exit ${exitCode}):\n${log.trim()}`,
      {
        details: { image },
      },
    );
  }
  return { image };
}
