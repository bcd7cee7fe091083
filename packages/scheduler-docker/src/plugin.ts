import { type BerthPlugin, describeError, type Platform } from "@berth/core";
import { DockerScheduler, type DockerSchedulerOptions } from "./docker-scheduler.js";

/**
 * Registers a `DockerScheduler` and taps the pipeline for apps that run on it: `deploy` starts the new generation,
 * `retire` stops the previous one, `pruneReleases` removes images that left the kept window, `deployFailed`
 * removes the image of a release that failed, `appDestroyed` removes every container, image and network of the app.
 */
export class DockerSchedulerPlugin implements BerthPlugin {
  readonly name = "scheduler-docker";
  readonly scheduler: DockerScheduler;

  constructor(options: DockerSchedulerOptions | DockerScheduler = {}) {
    this.scheduler = options instanceof DockerScheduler ? options : new DockerScheduler(options);
  }

  apply(platform: Platform): void {
    const scheduler = this.scheduler;
    const mine = (app: { scheduler?: string }) =>
      (app.scheduler ?? platform.defaults.scheduler) === scheduler.name;
    platform.registerScheduler(scheduler);
    scheduler.connect(platform);
    platform.hooks.appCreated.tapPromise(this.name, async ({ app }) => {
      if (mine(app)) await scheduler.prepareApp(app.name);
    });
    platform.hooks.deploy.tapPromise(this.name, async (context) =>
      context.scheduler === scheduler.name ? scheduler.deploy(context) : undefined,
    );
    platform.hooks.retire.tapPromise(this.name, async (context) => {
      if (context.scheduler === scheduler.name) await scheduler.retire(context);
    });
    platform.hooks.pruneReleases.tapPromise(this.name, async ({ app, keep, prune }) => {
      if (mine(app)) await scheduler.pruneArtifacts(app.name, keep, prune);
    });
    platform.hooks.deployFailed.tapPromise(this.name, async ({ app, release, output }) => {
      if (!release || !mine(app)) return;
      // A failed release can never be rolled back to: its image goes, unless a release that succeeded uses it.
      const succeeded = (await platform.store.listReleases(app.name)).filter(
        (candidate) => candidate.status === "succeeded",
      );
      try {
        await scheduler.pruneArtifacts(app.name, succeeded, [release]);
      } catch (error) {
        output.warn(`Could not remove the image of failed ${release.id}: ${describeError(error)}`);
      }
    });
    platform.hooks.appRenamed.tapPromise(this.name, async ({ from, app }) => {
      if (mine(app)) scheduler.renamed(from, app.name);
    });
    platform.hooks.appDestroyed.tapPromise(this.name, async ({ app }) => {
      if (mine(app)) await scheduler.removeApp(app.name);
    });
  }
}

/** `platform.use(dockerScheduler({ restartPolicy: "on-failure:5" }))` */
export function dockerScheduler(options: DockerSchedulerOptions = {}): DockerSchedulerPlugin {
  return new DockerSchedulerPlugin(options);
}
