import { testBuilder } from "@berth/core/testing";
import { afterAll, beforeAll } from "vitest";
import { herokuishBuilder } from "./plugin.js";
import { buildStackImage } from "./stack.js";
import { buildpackDir, docker, imageExists, removeImagesOf } from "./test-support/index.js";

beforeAll(async () => {
  await buildStackImage();
}, 600_000);

afterAll(async () => {
  await removeImagesOf(`berth/builder-conformance-${process.pid % 10000}`);
});

testBuilder({
  builderName: "herokuish",
  plugin: () => herokuishBuilder({ buildpacks: [buildpackDir("static"), buildpackDir("vendor")] }),
  buildable: { "index.html": "<h1>conformance</h1>\n" },
  // The vendor buildpack claims deps.txt and fails on a dependency name it cannot build.
  failing: { "deps.txt": "not a valid name!\n" },
  unclaimed: { "README.md": "no buildpack claims this\n" },
  verify: async (artifact) => {
    if (!(await imageExists(artifact.image))) throw new Error(`image ${artifact.image} was not committed`);
    const info = await docker.getImage(artifact.image).inspect();
    if (JSON.stringify(info.Config.Cmd) !== JSON.stringify(["/start", "web"])) {
      throw new Error(`image Cmd is ${JSON.stringify(info.Config.Cmd)}`);
    }
  },
});
