import { testScheduler } from "@berth/core/testing";
import { afterAll } from "vitest";
import { DockerSchedulerPlugin } from "./plugin.js";
import { buildImage, commands, removeImage, testImageDockerfile } from "./test-support/images.js";

const image = `berth-test-scheduler-docker-conformance:${process.pid}`;

afterAll(() => removeImage(image));

testScheduler({
  plugin: () => new DockerSchedulerPlugin({ stopGracePeriodSeconds: 2 }),
  schedulerName: "docker",
  artifact: async () => {
    await buildImage(image, testImageDockerfile);
    return { builder: "test", image };
  },
  commands,
});
