import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorld, type Transport, type World } from "./test/world.js";

let world: World;

beforeAll(async () => {
  world = await createWorld();
});

afterAll(async () => {
  await world?.close();
});

describe.each<Transport>(["http", "ssh"])("push over %s", (transport) => {
  it("creates the app on the first push, deploys, and deploys the next push", async () => {
    const app = `first-${transport}`;
    const dir = await world.repo({ "body.txt": "hello one\n" });
    const push = await world.git(["push", world.url(transport, app), "main"], { cwd: dir, transport });
    expect(push.stderr).toContain("remote: -----> Building first");
    expect(push.code, push.stderr).toBe(0);
    expect(await world.platform.apps.exists(app)).toBe(true);
    expect(await world.proxy.fetch(app)).toEqual({ status: 200, body: "hello one" });
  });
});
