export {
  type BuilderSuiteOptions,
  type ProxySuiteOptions,
  type SchedulerSuiteOptions,
  sourceFrom,
  temporaryDirectory,
  testBuilder,
  testProxy,
  testScheduler,
} from "./conformance.js";
export {
  FakeBuilder,
  FakeBuilderPlugin,
  FakeProxy,
  FakeProxyPlugin,
  FakeScheduler,
  FakeSchedulerPlugin,
  StaticArtifactBuilderPlugin,
} from "./fakes.js";
