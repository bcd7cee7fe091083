import type { BerthPlugin, Platform } from "@berth/core";
import { NginxProxy, type NginxProxyOptions } from "./nginx-proxy.js";

/**
 * Taps the pipeline's `route` and the lifecycle hooks for apps whose proxy is `nginx`, and registers the
 * `NginxProxy` for the operational verbs (status, certificates).
 */
export class NginxProxyPlugin implements BerthPlugin {
  readonly name = "proxy-nginx";
  readonly proxy: NginxProxy;

  constructor(options: NginxProxyOptions = {}) {
    this.proxy = new NginxProxy(options);
  }

  apply(platform: Platform): void {
    const proxy = this.proxy;
    proxy.attach(platform);
    platform.registerProxy(proxy);
    const hooks = platform.hooks;
    hooks.route.tapPromise(this.name, async (context) => {
      if (context.proxy === proxy.name) await proxy.route(context);
    });
    hooks.appDestroyed.tapPromise(this.name, async ({ app }) => {
      // Removing is idempotent and must also happen when the app switched proxies after being routed here.
      await proxy.removeApp(app.name);
    });
    hooks.appRenamed.tapPromise(this.name, async ({ from, app }) => {
      await proxy.renameApp(from, app);
    });
    hooks.domainsChanged.tapPromise(this.name, async ({ app }) => {
      if (proxy.handles(app)) await proxy.refreshApp(app);
    });
    hooks.portsChanged.tapPromise(this.name, async ({ app }) => {
      if (proxy.handles(app)) await proxy.refreshApp(app);
    });
    hooks.settingsChanged.tapPromise(this.name, async ({ app, previous }) => {
      await proxy.settingsChanged(app, previous);
    });
    // A stopped app answers 503, and a started one gets its instances' new endpoints: both come from the
    // store and the scheduler's live status, which is what reconcile renders.
    hooks.appStopped.tapPromise(this.name, async ({ app }) => {
      if (proxy.handles(app)) await proxy.reconcile();
    });
    hooks.appStarted.tapPromise(this.name, async ({ app }) => {
      if (proxy.handles(app)) await proxy.reconcile();
    });
    hooks.reconcile.tapPromise(this.name, async ({ output }) => {
      await proxy.reconcile(output);
    });
  }
}

/** The nginx proxy plugin: `platform.use(nginxProxy({ httpPort: 80 }))`. */
export function nginxProxy(options: NginxProxyOptions = {}): NginxProxyPlugin {
  return new NginxProxyPlugin(options);
}
