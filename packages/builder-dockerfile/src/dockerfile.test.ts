import { describe, expect, it } from "vitest";
import { baseImages, exposeWords, parseInstructions } from "./dockerfile.js";

describe("exposeWords", () => {
  it("keeps the written order of the last stage, across continuations and comments", () => {
    const dockerfile = [
      "FROM berth/busybox AS assets",
      "EXPOSE 9999",
      "FROM berth/busybox:latest",
      "EXPOSE 8080 \\",
      "  # a comment inside the continuation",
      "",
      "  443 80/udp",
      "expose 3000-3001/tcp $EXTRA_PORT",
    ].join("\n");
    expect(exposeWords(parseInstructions(dockerfile))).toEqual(["8080", "443", "80/udp", "3000-3001/tcp"]);
  });

  it("honours the escape parser directive", () => {
    expect(exposeWords(parseInstructions("# escape=`\nFROM x\nEXPOSE 81 `\n 82\n"))).toEqual(["81", "82"]);
  });
});

describe("baseImages", () => {
  it("lists the images stages start from, not scratch, earlier stages or variables", () => {
    const dockerfile = [
      "ARG BASE=berth/busybox",
      "FROM --platform=linux/amd64 berth/stack:bookworm AS build",
      "FROM scratch AS empty",
      "FROM $BASE",
      "FROM build AS again",
      "from berth/busybox:latest",
      "FROM berth/busybox:latest",
    ].join("\n");
    expect(baseImages(parseInstructions(dockerfile))).toEqual([
      "berth/stack:bookworm",
      "berth/busybox:latest",
    ]);
  });

  it("treats a name used before a stage defines it as an image", () => {
    expect(baseImages(parseInstructions("FROM app\nFROM berth/busybox AS app\nFROM app\n"))).toEqual([
      "app",
      "berth/busybox",
    ]);
  });
});
