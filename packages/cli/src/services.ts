import type { Output, Platform } from "@berth/core";
import type { ApiTokens } from "./api-tokens.js";
import type { ResolvedConfig } from "./config.js";
import type { ImageBuilderPlugin } from "./image-builder.js";

export interface KeyInfo {
  name: string;
  fingerprint: string;
  /** null: admin key. */
  apps: string[] | null;
  createdAt?: string;
}

/** SSH keys that may push and run commands (backed by @berth/git). */
export interface KeyService {
  add(name: string, publicKey: string, apps: string[] | null): Promise<KeyInfo>;
  remove(name: string): Promise<void>;
  list(): Promise<KeyInfo[]>;
}

export interface CertificateInfo {
  app: string;
  domains: string[];
  validTo?: string;
  selfSigned?: boolean;
}

/** TLS certificates per app (backed by @berth/proxy-nginx). */
export interface CertificateService {
  add(app: string, certificate: string, key: string): Promise<CertificateInfo>;
  generate(app: string, domains: string[]): Promise<CertificateInfo>;
  remove(app: string): Promise<void>;
  report(app: string): Promise<CertificateInfo | undefined>;
}

/** Buildpack stack images (backed by @berth/builder-herokuish). */
export interface StackService {
  build(output: Output, options: { force: boolean }): Promise<{ image: string }>;
}

/** The source of an app's current release, for `ps:rebuild` (backed by @berth/git). */
export interface SourceService {
  checkout(
    app: string,
    rev: string | undefined,
  ): Promise<{ dir: string; rev: string; cleanup(): Promise<void> }>;
}

/**
 * What commands reach besides the Platform: everything the daemon composed. Optional members are absent
 * when the plugin providing them is disabled; commands needing them say so.
 */
export interface DaemonServices {
  config: ResolvedConfig;
  platform: Platform;
  tokens: ApiTokens;
  images: ImageBuilderPlugin;
  startedAt: number;
  keys?: KeyService;
  certificates?: CertificateService;
  stack?: StackService;
  sources?: SourceService;
  /** Where the git servers answer, for messages (`git remote add`). */
  gitEndpoints?: { http?: string; ssh?: string };
}
