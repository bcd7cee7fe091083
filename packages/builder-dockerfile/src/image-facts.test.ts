import { describe, expect, it } from "vitest";
import { exposedPorts, renderDefaultCommand, shellQuote } from "./image-facts.js";

describe("exposedPorts", () => {
  const exposed = { "80/tcp": {}, "443/tcp": {}, "8080/tcp": {}, "53/udp": {}, "9000/tcp": {} };

  it("orders TCP ports by the Dockerfile, then the history, then by number", () => {
    const history = [
      { CreatedBy: "/bin/sh -c #(nop)  EXPOSE 9000" },
      { CreatedBy: "/bin/sh -c #(nop)  EXPOSE 443 53/udp 8080" },
    ];
    expect(exposedPorts(exposed, history, ["8080", "443"])).toEqual([8080, 443, 9000, 80]);
    expect(exposedPorts(exposed, history)).toEqual([9000, 443, 8080, 80]);
    expect(exposedPorts(exposed, [])).toEqual([80, 443, 8080, 9000]);
  });

  it("ignores ports the image does not expose and handles none", () => {
    expect(exposedPorts({ "80/tcp": {} }, [], ["8080", "80"])).toEqual([80]);
    expect(exposedPorts(null, [], ["80"])).toEqual([]);
  });
});

describe("renderDefaultCommand", () => {
  it("shows a shell-form command as written and quotes exec-form words", () => {
    expect(renderDefaultCommand(null, ["/bin/sh", "-c", "httpd -f -p $PORT"])).toBe("httpd -f -p $PORT");
    expect(renderDefaultCommand(["/entry.sh"], ["serve", "two words", "it's", ""])).toBe(
      "/entry.sh serve 'two words' 'it'\\''s' ''",
    );
    expect(renderDefaultCommand(undefined, [])).toBeUndefined();
    expect(renderDefaultCommand(null, null)).toBeUndefined();
  });

  it("quotes everything a shell would read as more than a word", () => {
    for (const word of ["$(id)", "a;b", "`x`", "a b", "*", "~", "a\nb"]) {
      expect(shellQuote(word)).toMatch(/^'.*'$/s);
    }
    expect(shellQuote("--port=5000")).toBe("--port=5000");
  });
});
