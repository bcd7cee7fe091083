import { testBuilder } from "@berth/core/testing";
import Docker from "dockerode";
import { expect } from "vitest";
import { dockerfileBuilder } from "./index.js";

const docker = new Docker();

testBuilder({
  plugin: () => dockerfileBuilder({ docker }),
  builderName: "dockerfile",
  buildable: {
    Dockerfile:
      'FROM berth/busybox:latest\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-h", "/www"]\n',
    "index.html": "hello from conformance\n",
  },
  failing: { Dockerfile: "FROM berth/busybox:latest\nRUN echo about to fail && exit 3\n" },
  unclaimed: { "index.html": "no Dockerfile here\n", Procfile: "web: httpd -f\n" },
  verify: async (artifact) => {
    const image = await docker.getImage(artifact.image).inspect();
    expect(image.RepoTags).toContain(artifact.image);
    expect(image.Config.Labels?.["berth.release"]).toBe("v1");
    expect(artifact.defaultProcessTypes?.web).toBe("httpd -f -h /www");
  },
});
