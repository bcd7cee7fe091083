import { isBerthError } from "@berth/core";
import { describe, expect, it } from "vitest";
import { limitsFor, parseDockerSettings, parseMemory, parseRestartPolicy, parseVolume } from "./settings.js";

const defaults = { restartPolicy: parseRestartPolicy("on-failure:10"), stopGracePeriodSeconds: 10 };

function rejection(work: () => unknown): unknown {
  try {
    work();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("Docker scheduler settings", () => {
  it("falls back to the scheduler's defaults", () => {
    expect(parseDockerSettings(undefined, defaults)).toEqual({
      restartPolicy: { Name: "on-failure", MaximumRetryCount: 10 },
      stopGracePeriodSeconds: 10,
      limits: {},
      volumes: [],
      isolatedNetwork: false,
    });
    expect(parseDockerSettings({ isolatedNetwork: true }, defaults).isolatedNetwork).toBe(true);
  });

  it("reads restart policies, grace periods, limits and volumes", () => {
    const settings = parseDockerSettings(
      {
        restartPolicy: "unless-stopped",
        stopGracePeriod: 3,
        limits: { _all_: { memory: "128m" }, web: { memory: "1g", cpus: 0.5 } },
        volumes: ["uploads:/app/uploads", "/srv/shared:/app/shared:ro"],
      },
      defaults,
    );
    expect(settings.restartPolicy).toEqual({ Name: "unless-stopped" });
    expect(settings.stopGracePeriodSeconds).toBe(3);
    expect(limitsFor(settings, "web")).toEqual({ memory: 1024 ** 3, nanoCpus: 500_000_000 });
    expect(limitsFor(settings, "worker")).toEqual({ memory: 128 * 1024 ** 2 });
    expect(settings.volumes).toEqual([
      { type: "volume", source: "uploads", target: "/app/uploads", readOnly: false },
      { type: "bind", source: "/srv/shared", target: "/app/shared", readOnly: true },
    ]);
  });

  it.each([
    [{ isolatedNetwork: "yes" }, /isolatedNetwork must be true or false/],
    [{ limits: { web: { memory: -1 } } }, /memory limit -1/],
    [{ limits: { web: { memory: "-1" } } }, /memory limit "-1"/],
    [{ limits: { web: { memory: "lots" } } }, /memory limit "lots"/],
    [{ limits: { web: { memory: "1k" } } }, /at least 6m/],
    [{ limits: { web: { cpus: 0 } } }, /CPU limit 0/],
    [{ limits: { web: { swap: "1g" } } }, /unknown keys swap/],
    [{ limits: { "Web Server": { memory: "1g" } } }, /invalid process type/],
    [{ restartPolicy: "sometimes" }, /restart policy "sometimes"/],
    [{ stopGracePeriod: -5 }, /stopGracePeriod -5/],
    [{ volumes: "data:/data" }, /volumes must be a list/],
    [{ volumes: ["data"] }, /Invalid volume "data"/],
    [{ volumes: ["../etc:/data"] }, /Invalid volume name/],
    [{ volumes: ["/srv/../etc:/data"] }, /host path must be an absolute, normalized path/],
    [{ volumes: ["data:relative"] }, /container path/],
    [{ volumes: ["data:/"] }, /cannot mount over/],
    [{ volumes: ["data:/data:rx"] }, /optionally :ro/],
    [{ volumes: ["a1:/data", "b1:/data"] }, /Two volumes mount on \/data/],
    [{ volumes: ["data:/data,readonly"] }, /Invalid volume/],
    [{ memory: "1g" }, /Unknown setting memory/],
  ])("rejects %j with INVALID_SETTING", (raw, message) => {
    const error = rejection(() => parseDockerSettings(raw as never, defaults));
    expect(isBerthError(error, "INVALID_SETTING")).toBe(true);
    expect((error as Error).message).toMatch(message);
  });

  it("parses memory sizes", () => {
    expect(parseMemory("512m", "web")).toBe(512 * 1024 ** 2);
    expect(parseMemory("1.5g", "web")).toBe(1.5 * 1024 ** 3);
    expect(parseMemory(8_000_000, "web")).toBe(8_000_000);
    expect(parseVolume("/data:/data").type).toBe("bind");
  });
});
