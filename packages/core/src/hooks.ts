import { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from "tapable";
import type { AppSettings, Artifact, Deployment, Release } from "./model.js";
import type { Output } from "./output.js";
import type {
  BuildContext,
  CheckContext,
  DeployContext,
  InstanceSpec,
  OperationContext,
  ReceiveContext,
  ReleaseContext,
  RetireContext,
  RouteContext,
} from "./plugin.js";

export interface FailureContext extends OperationContext {
  error: unknown;
  /** The release that failed, when one was created. */
  release: Release | undefined;
  /** The abandoned deployment, when the scheduler started one. */
  deployment: Deployment | undefined;
}

export interface DeployedContext extends OperationContext {
  release: Release;
  deployment: Deployment;
  /** True when this is the app's first successful deploy. */
  first: boolean;
}

/**
 * Builds the hooks of one Platform. Pipeline hooks run in this order for every deploy:
 * receive → build → release → deploy → checkDeploy → route → retire.
 */
export function createHooks() {
  return Object.freeze({
    /** Source arrived (push, directory). Taps receive `{ app, source }` and may edit `source.dir` in place. */
    receive: new AsyncSeriesHook<[ReceiveContext]>(["context"]),
    /** Build the source. Bail: the app's selected builder, or the first builder whose detection claims the source, returns the Artifact. */
    build: new AsyncSeriesBailHook<[BuildContext], Artifact | undefined>(["context"]),
    /** Shape the new release. Waterfall: core fills process types, config and app.json first; taps return the release with their additions. */
    release: new AsyncSeriesWaterfallHook<[Release, ReleaseContext]>(["release", "context"]),
    /** Start NEW instances of every process type. Bail: the app's selected scheduler returns the Deployment; running instances are untouched. */
    deploy: new AsyncSeriesBailHook<[DeployContext], Deployment | undefined>(["context"]),
    /** Gate: every tap checks the new instances; a throw aborts the deploy and every new instance is removed. */
    checkDeploy: new AsyncSeriesHook<[CheckContext]>(["context"]),
    /** Switch traffic to the checked instances. The app's selected proxy answers; a throw aborts the deploy. */
    route: new AsyncSeriesHook<[RouteContext]>(["context"]),
    /** Traffic has moved: drain and stop the previous deployment's instances. */
    retire: new AsyncSeriesHook<[RetireContext]>(["context"]),
    /** A deploy succeeded and the previous instances are retired (app.json postdeploy scripts, notifications). */
    deployed: new AsyncSeriesHook<[DeployedContext]>(["context"]),
    /** A deploy failed at any stage; the previous release is still serving. Taps receive the error. */
    deployFailed: new AsyncSeriesHook<[FailureContext]>(["context"]),
    /** Each instance spec before a scheduler creates it. Waterfall: taps return the spec with env or labels added. */
    instanceSpec: new AsyncSeriesWaterfallHook<[InstanceSpec, { release: Release }]>(["spec", "context"]),
    /** Releases fell out of the kept window; taps remove their artifacts. */
    pruneReleases: new AsyncSeriesHook<[{ app: AppSettings; keep: Release[]; prune: Release[] }]>([
      "context",
    ]),
    /** An app was created. */
    appCreated: new AsyncSeriesHook<[{ app: AppSettings }]>(["context"]),
    /** An app is being destroyed: taps remove everything they keep for it (instances, images, vhosts, repos). */
    appDestroyed: new AsyncSeriesHook<[{ app: AppSettings; output: Output }]>(["context"]),
    /** An app was renamed; taps move what they keep under the old name. */
    appRenamed: new AsyncSeriesHook<[{ from: string; app: AppSettings }]>(["context"]),
    /** Config vars were set or unset (already stored). */
    configChanged: new AsyncSeriesHook<[{ app: AppSettings; set: string[]; unset: string[] }]>(["context"]),
    /** The app's domains changed; the proxy re-renders its routes. */
    domainsChanged: new AsyncSeriesHook<[{ app: AppSettings; previous: string[] }]>(["context"]),
    /** The app's port mappings changed; the proxy re-renders its routes. */
    portsChanged: new AsyncSeriesHook<[{ app: AppSettings }]>(["context"]),
    /** The app's processes were stopped (`ps.stop`); proxies answer 503 until it starts again. */
    appStopped: new AsyncSeriesHook<[{ app: AppSettings }]>(["context"]),
    /** The app's stopped processes were started again (`ps.start`). */
    appStarted: new AsyncSeriesHook<[{ app: AppSettings }]>(["context"]),
    /** The app's scale changed and the new formation is serving. */
    scaled: new AsyncSeriesHook<[{ app: AppSettings; formation: Record<string, number> }]>(["context"]),
    /** The app's settings changed (a plugin setting, a selected builder). */
    settingsChanged: new AsyncSeriesHook<[{ app: AppSettings; previous: AppSettings }]>(["context"]),
    /** Start-up: rebuild live state from the store and the engines. */
    reconcile: new AsyncSeriesHook<[{ platform: OperationContext["platform"]; output: Output }]>(["context"]),
  });
}

export type BerthHooks = ReturnType<typeof createHooks>;
