import { testBuilder, testProxy, testScheduler } from "./conformance.js";
import { FakeBuilderPlugin, FakeProxyPlugin, FakeSchedulerPlugin } from "./fakes.js";

// The suites must hold for core's own fakes, so a failure in a real plugin is the plugin's, not the suite's.
testScheduler({
  plugin: () => new FakeSchedulerPlugin(),
  schedulerName: "fake",
  artifact: async () => ({ builder: "static", image: "fake/static" }),
  commands: { web: "serve", worker: "sleep", failing: "exit 1" },
});

const proxyPlugin = new FakeProxyPlugin();
testProxy({
  plugin: () => proxyPlugin,
  proxyName: "fake",
  request: async (host) => {
    const app = [...proxyPlugin.proxy.routes.entries()].find(([, route]) =>
      route.domains.includes(host),
    )?.[0];
    return (app && (await proxyPlugin.proxy.fetch(app))) || { status: 404, body: "" };
  },
});

testBuilder({
  plugin: () => new FakeBuilderPlugin(),
  builderName: "fake",
  buildable: { "body.txt": "hi" },
  failing: { FAIL_BUILD: "no" },
  unclaimed: { NOT_FAKE: "" },
});
