import { describe, expect, it } from "vitest";
import { DockerStreamDemuxer, LineSplitter, splitTimestamp } from "./streams.js";

function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text, "utf8");
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("Docker stream demultiplexing", () => {
  it("splits frames cut at any byte into stdout and stderr payloads", () => {
    const whole = Buffer.concat([frame(1, "hello\nwor"), frame(2, "oops\n"), frame(1, "ld ✓\n")]);
    for (let cut = 0; cut <= whole.length; cut += 1) {
      const seen: string[] = [];
      const stdout = new LineSplitter((line) => seen.push(`out:${line}`));
      const demuxer = new DockerStreamDemuxer((stream, payload) =>
        stream === "stdout" ? stdout.push(payload) : seen.push(`err:${payload.toString()}`),
      );
      demuxer.push(whole.subarray(0, cut));
      demuxer.push(whole.subarray(cut));
      stdout.flush();
      expect(seen).toEqual(["out:hello", "err:oops\n", "out:world ✓"]);
    }
  });

  it("keeps a multi-byte character split across chunks whole", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    const bytes = Buffer.from("é\r\nlast", "utf8");
    splitter.push(bytes.subarray(0, 1));
    splitter.push(bytes.subarray(1));
    splitter.flush();
    expect(lines).toEqual(["é", "last"]);
  });

  it("separates Docker's timestamps from the line", () => {
    expect(splitTimestamp("2026-11-22T12:00:00.123456789Z hello world")).toEqual({
      time: "2026-11-22T12:00:00.123456789Z",
      line: "hello world",
    });
    expect(splitTimestamp("no time here")).toEqual({ time: undefined, line: "no time here" });
  });
});
