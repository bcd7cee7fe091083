import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { generateHostKeyPair } from "./ssh-server.js";

describe("host keys", () => {
  it("only hands out keys that ssh2's server can load (ssh2 mangles about 1 in 400)", () => {
    // 2,000 draws: a generator without the check hands out a broken key with probability above 99%.
    const refused: string[] = [];
    for (let draw = 0; draw < 2000; draw += 1) {
      const pair = generateHostKeyPair();
      try {
        new ssh2.Server({ hostKeys: [pair.private] });
      } catch (error) {
        refused.push((error as Error).message);
      }
    }
    expect(refused).toEqual([]);
  });
});
