import { dockerfileBuilder } from "@berth/builder-dockerfile";
import { buildStackImage, herokuishBuilder } from "@berth/builder-herokuish";
import { BerthError, type BerthPlugin, type Platform } from "@berth/core";
import { type GitPlugin, git, type Listening } from "@berth/git";
import { type NginxProxyPlugin, nginxProxy } from "@berth/proxy-nginx";
import { dockerScheduler } from "@berth/scheduler-docker";
import type { ResolvedConfig } from "./config.js";
import type { Composition } from "./daemon.js";
import type { DaemonServices } from "./services.js";
import { registerSshCommands } from "./ssh-commands.js";

/**
 * The reference platform: core + git + builder-dockerfile + builder-herokuish + scheduler-docker + proxy-nginx,
 * then the config's extra plugins. Embedders copy this function as their starting point.
 */
export async function composeBuiltIn(config: ResolvedConfig, _platform: Platform): Promise<Composition> {
  const enabled = (name: string) => !config.disable.includes(name);
  const plugins: BerthPlugin[] = [];
  if (enabled("scheduler-docker")) plugins.push(dockerScheduler());
  if (enabled("builder-dockerfile")) plugins.push(dockerfileBuilder());
  if (enabled("builder-herokuish")) {
    plugins.push(herokuishBuilder(config.buildpacks.length > 0 ? { buildpacks: config.buildpacks } : {}));
  }
  let proxy: NginxProxyPlugin | undefined;
  if (enabled("proxy-nginx")) {
    proxy = nginxProxy({
      httpPort: config.proxy.httpPort,
      httpsPort: config.proxy.httpsPort,
      listenAddress: config.proxy.listen,
    });
    plugins.push(proxy);
  }
  let gitPlugin: GitPlugin | undefined;
  if (enabled("git")) {
    gitPlugin = git();
    plugins.push(gitPlugin);
  }
  plugins.push(...(await loadExtraPlugins(config)));

  const services: Composition["services"] = {};
  if (gitPlugin) {
    const plugin = gitPlugin;
    services.keys = {
      add: async (name, publicKey, apps) => {
        const record = await plugin.keys.add(name, publicKey, apps ? { apps } : {});
        return {
          name: record.name,
          fingerprint: record.fingerprint,
          apps: record.admin ? null : record.apps,
        };
      },
      remove: async (name) => {
        if (!(await plugin.keys.remove(name))) {
          throw new BerthError("KEY_NOT_FOUND", `No key named ${name}; keys:list shows them.`);
        }
      },
      list: async () =>
        (await plugin.keys.list()).map((record) => ({
          name: record.name,
          fingerprint: record.fingerprint,
          apps: record.admin ? null : record.apps,
          createdAt: record.addedAt,
        })),
    };
    services.sources = {
      checkout: async (app, rev) => {
        if (!rev) {
          throw new BerthError("APP_NOT_DEPLOYED", `${app} has no git release to rebuild; push it first.`);
        }
        const source = await plugin.extractSource(app, rev);
        return { dir: source.dir, rev: source.rev, cleanup: () => source.remove() };
      },
    };
    services.gitEndpoints = {
      http: `http://${publicHost(config.git.host)}:${config.git.httpPort}`,
      ssh: `ssh://berth@${publicHost(config.git.host)}:${config.git.sshPort}`,
    };
  }
  if (proxy) {
    const certs = proxy.proxy.certs;
    services.certificates = {
      add: (app, certificate, key) => certs.add(app, { certificate, key }),
      generate: (app, domains) => certs.generateSelfSigned(app, domains.length > 0 ? { domains } : {}),
      remove: (app) => certs.remove(app),
      report: (app) => certs.get(app),
    };
  }
  if (enabled("builder-herokuish")) {
    services.stack = {
      build: (output, options) =>
        buildStackImage({
          refresh: options.force,
          onOutput: (chunk) => output.stream(chunk),
        }).finally(() => output.flush()),
    };
  }

  const listening: Listening[] = [];
  return {
    plugins,
    services,
    ...(gitPlugin ? { tokens: () => (gitPlugin as GitPlugin).tokens } : {}),
    async start(daemon) {
      if (!gitPlugin) return;
      registerSshCommands(gitPlugin.commands, daemon.services as DaemonServices);
      listening.push(await gitPlugin.listenHttp({ host: config.git.host, port: config.git.httpPort }));
      listening.push(await gitPlugin.listenSsh({ host: config.git.host, port: config.git.sshPort }));
    },
    async stop() {
      await gitPlugin?.close();
    },
  };
}

function publicHost(host: string): string {
  return host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
}

/** Plugins named in the config: a module whose default (or named) export is a factory or a plugin class. */
export async function loadExtraPlugins(config: ResolvedConfig): Promise<BerthPlugin[]> {
  const plugins: BerthPlugin[] = [];
  for (const reference of config.plugins) {
    const loaded = (await import(reference.module)) as Record<string, unknown>;
    const exported = loaded[reference.export ?? "default"];
    if (typeof exported !== "function") {
      throw new BerthError(
        "PLUGIN_NOT_FOUND",
        `Plugin module ${reference.module} has no ${reference.export ?? "default"} export to call.`,
      );
    }
    // A class needs `new`; a factory is called. Classes are told apart by their prototype's apply().
    const isClass = typeof (exported as { prototype?: { apply?: unknown } }).prototype?.apply === "function";
    const plugin = isClass
      ? new (exported as new (options?: unknown) => unknown)(reference.options)
      : (exported as (options?: unknown) => unknown)(reference.options);
    if (!plugin || typeof (plugin as { apply?: unknown }).apply !== "function") {
      throw new BerthError(
        "PLUGIN_NOT_FOUND",
        `Plugin module ${reference.module} did not produce a plugin (an object with apply()).`,
      );
    }
    plugins.push(plugin as BerthPlugin);
  }
  return plugins;
}
