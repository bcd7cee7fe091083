import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError, validateDomain, writeFileAtomic } from "@berth/core";
import { runProgram } from "./nginx-process.js";

/** What Berth knows about an app's installed certificate. */
export interface CertificateInfo {
  app: string;
  /** SHA-256 fingerprint of the leaf certificate. */
  fingerprint: string;
  subject: string;
  issuer: string;
  /** DNS names the certificate covers (subjectAltName, else the common name). */
  domains: string[];
  validFrom: string;
  validTo: string;
  selfSigned: boolean;
}

export interface CertificateFiles {
  certificatePath: string;
  keyPath: string;
}

export interface InstalledCertificate extends CertificateFiles {
  info: CertificateInfo;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function invalidCertificate(message: string, cause?: unknown): BerthError {
  return new BerthError("INVALID_CERTIFICATE", message, cause === undefined ? {} : { cause });
}

/** The DNS names a certificate covers. */
function certificateDomains(certificate: X509Certificate): string[] {
  const alternative = certificate.subjectAltName
    ?.split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4));
  if (alternative && alternative.length > 0) return alternative;
  const commonName = /(?:^|\n)CN=([^\n]+)/.exec(certificate.subject)?.[1];
  return commonName ? [commonName] : [];
}

/**
 * Checks a PEM certificate (optionally followed by its chain) and PEM private key: each parses, the key belongs
 * to the leaf, and the leaf is valid now. Returns normalised PEM (re-encoded by node:crypto, so nothing but
 * certificates and the key reaches disk) and facts about the leaf.
 */
export function verifyCertificatePair(
  app: string,
  certificatePem: string,
  keyPem: string,
): { certificate: string; key: string; info: CertificateInfo } {
  if (typeof certificatePem !== "string" || typeof keyPem !== "string") {
    throw invalidCertificate("Give the certificate and the private key as PEM text.");
  }
  const blocks = certificatePem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw invalidCertificate(
      "The certificate is not PEM: it must contain -----BEGIN CERTIFICATE----- (the leaf first, then its chain).",
    );
  }
  let chain: X509Certificate[];
  try {
    chain = blocks.map((block) => new X509Certificate(block));
  } catch (error) {
    throw invalidCertificate(`The certificate could not be parsed: ${(error as Error).message}.`, error);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: "pem" });
  } catch (error) {
    throw invalidCertificate(
      `The private key could not be parsed (${(error as Error).message}); give an unencrypted PEM key.`,
      error,
    );
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw invalidCertificate("The private key does not belong to the certificate; give the matching pair.");
  }
  const now = Date.now();
  if (Date.parse(leaf.validTo) <= now) {
    throw invalidCertificate(`The certificate expired on ${leaf.validTo}; renew it first.`);
  }
  if (Date.parse(leaf.validFrom) > now + 60_000) {
    throw invalidCertificate(`The certificate is not valid before ${leaf.validFrom}.`);
  }
  const info: CertificateInfo = {
    app,
    fingerprint: leaf.fingerprint256.replace(/:/g, "").toLowerCase(),
    subject: leaf.subject,
    issuer: leaf.issuer,
    domains: certificateDomains(leaf),
    validFrom: new Date(leaf.validFrom).toISOString(),
    validTo: new Date(leaf.validTo).toISOString(),
    selfSigned: leaf.subject === leaf.issuer && leaf.verify(leaf.publicKey),
  };
  return {
    certificate: `${chain.map((certificate) => certificate.toString().trim()).join("\n")}\n`,
    key: key.export({ type: "pkcs8", format: "pem" }).toString(),
    info,
  };
}

/**
 * Certificates on disk: `<certs>/<app>/<fingerprint>/{certificate,key}.pem` (0600, directories 0700), and
 * `<certs>/<app>/current.json` naming the one in use. A new pair goes into its own directory, so the live nginx
 * config never points at a file that is being replaced.
 */
export class CertificateStore {
  readonly directory: string;

  constructor(directory: string) {
    this.directory = directory;
  }

  #appDir(app: string): string {
    return join(this.directory, app);
  }

  filesFor(app: string, fingerprint: string): CertificateFiles {
    const dir = join(this.#appDir(app), fingerprint);
    return { certificatePath: join(dir, "certificate.pem"), keyPath: join(dir, "key.pem") };
  }

  async current(app: string): Promise<InstalledCertificate | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.#appDir(app), "current.json"), "utf8");
    } catch {
      return undefined;
    }
    const info = JSON.parse(text) as CertificateInfo;
    if (!/^[0-9a-f]{64}$/.test(info.fingerprint)) return undefined;
    return { ...this.filesFor(app, info.fingerprint), info };
  }

  /** Writes a verified pair next to the current one, not yet in use. */
  async stage(
    app: string,
    certificate: string,
    key: string,
    info: CertificateInfo,
  ): Promise<InstalledCertificate> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    await mkdir(this.#appDir(app), { recursive: true, mode: 0o700 });
    const files = this.filesFor(app, info.fingerprint);
    await mkdir(join(this.#appDir(app), info.fingerprint), { recursive: true, mode: 0o700 });
    await writeFileAtomic(files.keyPath, key, { mode: 0o600 });
    await writeFileAtomic(files.certificatePath, certificate, { mode: 0o600 });
    await chmod(files.keyPath, 0o600);
    await chmod(files.certificatePath, 0o600);
    return { ...files, info };
  }

  /** Marks a staged pair as the one in use and removes every other pair of the app. */
  async commit(app: string, installed: InstalledCertificate): Promise<void> {
    await writeFileAtomic(
      join(this.#appDir(app), "current.json"),
      `${JSON.stringify(installed.info, null, 2)}\n`,
      {
        mode: 0o600,
      },
    );
    await this.removeAllBut(app, installed.info.fingerprint);
  }

  async discard(app: string, fingerprint: string): Promise<void> {
    const current = await this.current(app);
    if (current?.info.fingerprint === fingerprint) return;
    await rm(join(this.#appDir(app), fingerprint), { recursive: true, force: true });
  }

  async removeAllBut(app: string, fingerprint: string | undefined): Promise<void> {
    let entries: string[] = [];
    try {
      entries = await readdir(this.#appDir(app));
    } catch {
      return;
    }
    for (const entry of entries) {
      if (/^[0-9a-f]{64}$/.test(entry) && entry !== fingerprint) {
        await rm(join(this.#appDir(app), entry), { recursive: true, force: true });
      }
    }
  }

  async removeApp(app: string): Promise<void> {
    await rm(this.#appDir(app), { recursive: true, force: true });
  }

  async renameApp(from: string, to: string): Promise<void> {
    await rm(this.#appDir(to), { recursive: true, force: true });
    try {
      await rename(this.#appDir(from), this.#appDir(to));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      return;
    }
    const current = await this.current(to);
    if (current) {
      await writeFileAtomic(
        join(this.#appDir(to), "current.json"),
        `${JSON.stringify({ ...current.info, app: to }, null, 2)}\n`,
        { mode: 0o600 },
      );
    }
  }
}

/**
 * A self-signed certificate for testing, made by the `openssl` CLI (argv only; every domain validated first).
 * Returns PEM text; nothing is installed.
 */
export async function generateSelfSignedPair(
  domains: string[],
  options: { days?: number; opensslBinary?: string } = {},
): Promise<{ certificate: string; key: string }> {
  const names = domains.map(validateDomain);
  if (names.length === 0) {
    throw new BerthError(
      "INVALID_DOMAIN",
      "A self-signed certificate needs at least one domain: add one to the app, or set a global domain.",
    );
  }
  const days = options.days ?? 365;
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    throw new BerthError("INVALID_SETTING", `Invalid certificate lifetime ${days}: use 1 to 3650 days.`);
  }
  const dir = await mkdtemp(join(tmpdir(), "berth-self-signed-"));
  try {
    const keyPath = join(dir, "key.pem");
    const certificatePath = join(dir, "certificate.pem");
    const result = await runProgram([
      options.opensslBinary ?? "openssl",
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-sha256",
      "-days",
      String(days),
      "-subj",
      `/CN=${names[0]}`,
      "-addext",
      `subjectAltName=${names.map((name) => `DNS:${name}`).join(",")}`,
      "-keyout",
      keyPath,
      "-out",
      certificatePath,
    ]).catch((error: unknown) => {
      throw new BerthError(
        "NOT_SUPPORTED",
        "Generating a self-signed certificate needs the openssl CLI (Debian: apt-get install openssl).",
        { cause: error },
      );
    });
    if (result.exitCode !== 0) {
      throw new BerthError(
        "PROXY_FAILED",
        `openssl could not create the certificate: ${result.output.trim()}`,
      );
    }
    return {
      certificate: await readFile(certificatePath, "utf8"),
      key: await readFile(keyPath, "utf8"),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
