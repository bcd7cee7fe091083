import { isBerthError, type JsonValue } from "@berth/core";
import { describe, expect, it } from "vitest";
import { parseNginxError } from "./nginx-process.js";
import { type ConfigModel, renderGeneration, word } from "./render.js";
import { DEFAULT_PROXY_SETTINGS, parseProxySettings } from "./settings.js";

const model: ConfigModel = {
  generation: "g7",
  prefix: "/var/lib/berth/nginx",
  generationDir: "/var/lib/berth/nginx/generations/g7",
  listenAddress: "0.0.0.0",
  control: { kind: "unix", path: "/var/lib/berth/nginx/run/control.sock" },
  routerControl: "/var/lib/berth/nginx/run/router-control.sock",
  defaultServer: true,
  workerProcesses: "auto",
  workerUser: undefined,
  workerShutdownTimeoutSeconds: 300,
  defaultListeners: [{ scheme: "http", port: 80 }],
  hosts: [
    {
      app: "shop",
      serverNames: ["shop.example.com", "*.shop.example.com"],
      servers: [{ scheme: "http", port: 80, containerPort: 5000 }],
      upstreams: [
        {
          containerPort: 5000,
          endpoints: [{ host: "127.0.0.1", port: 32768 }],
          socket: "/var/lib/berth/nginx/run/apps/shop-5000.sock",
        },
      ],
      settings: { ...DEFAULT_PROXY_SETTINGS },
    },
  ],
};

describe("rendering", () => {
  it("writes typed data as plain words and refuses anything nginx would interpret", () => {
    for (const hostile of ["a;b", "a{", "}", "$host", "a b", "a\nb", '"', "'", "#x", "\\", ""]) {
      expect(() => word(hostile), JSON.stringify(hostile)).toThrow(/Refusing to write/);
    }
    expect(word("*.shop.example.com")).toBe("*.shop.example.com");
    const bad = {
      ...model,
      hosts: [{ ...model.hosts[0]!, serverNames: ["shop.example.com;include /etc/passwd"] }],
    };
    expect(() => renderGeneration(bad)).toThrow(/Refusing to write domain/);
  });

  it("renders the edge vhost, the router's upstream and a default 404 server", () => {
    const { edge, router } = renderGeneration(model);
    expect([...edge.keys()]).toEqual(["nginx.conf", "http.conf", "apps/shop.conf"]);
    expect([...router.keys()]).toEqual(["router.conf", "router/shop.conf"]);
    const vhost = edge.get("apps/shop.conf") ?? "";
    expect(vhost).toContain("server unix:/var/lib/berth/nginx/run/apps/shop-5000.sock max_fails=0;");
    expect(vhost).toContain("server_name shop.example.com *.shop.example.com;");
    expect(vhost).toContain("proxy_set_header X-Forwarded-Proto $scheme;");
    const routed = router.get("router/shop.conf") ?? "";
    expect(routed).toContain("upstream berth-shop-5000 {");
    expect(routed).toContain("server 127.0.0.1:32768 max_fails=0;");
    expect(routed).toContain("listen unix:/var/lib/berth/nginx/run/apps/shop-5000.sock;");
    expect(edge.get("http.conf")).toContain("listen 0.0.0.0:80 default_server;");
    expect(edge.get("http.conf")).toContain("include /var/lib/berth/nginx/generations/g7/apps/shop.conf;");
  });

  it("answers 503 from the router when an app has no instance", () => {
    const idle = {
      ...model,
      hosts: [{ ...model.hosts[0]!, upstreams: [{ ...model.hosts[0]!.upstreams[0]!, endpoints: [] }] }],
    };
    const routed = renderGeneration(idle).router.get("router/shop.conf") ?? "";
    expect(routed).not.toContain("upstream");
    expect(routed).toContain("return 503");
  });
});

describe("settings", () => {
  it("accepts sizes, times, counts and booleans by pattern", () => {
    expect(
      parseProxySettings({
        clientMaxBodySize: "25m",
        proxyReadTimeout: "500ms",
        upstreamKeepalive: "0",
        hsts: "true",
      }),
    ).toMatchObject({
      clientMaxBodySize: "25m",
      proxyReadTimeout: "500ms",
      upstreamKeepalive: 0,
      hsts: true,
    });
  });

  it("rejects everything else with INVALID_SETTING", () => {
    const rejected: Array<Record<string, JsonValue>> = [
      { clientMaxBodySize: "10 m" },
      { clientMaxBodySize: "10m;" },
      { proxyReadTimeout: "1d" },
      { proxyReadTimeout: ["30s"] },
      { upstreamKeepalive: 1.5 },
      { upstreamKeepalive: 5000 },
      { hsts: "yes" },
      { unknown: true },
    ];
    for (const values of rejected) {
      let error: unknown;
      try {
        parseProxySettings(values);
      } catch (caught) {
        error = caught;
      }
      expect(isBerthError(error, "INVALID_SETTING"), JSON.stringify(values)).toBe(true);
    }
  });
});

describe("nginx errors", () => {
  it("finds the file and line in both output formats", () => {
    expect(
      parseNginxError('nginx: [emerg] unknown directive "x" in /p/generations/g2/apps/shop.conf:12\n'),
    ).toEqual({ message: 'unknown directive "x"', file: "/p/generations/g2/apps/shop.conf", line: 12 });
    expect(
      parseNginxError(
        '2026/11/22 12:00:00 [emerg] 42#42: unknown directive "x" in /p/a.conf:3\nnginx: configuration file /p/n.conf test failed',
      ),
    ).toEqual({ message: 'unknown directive "x"', file: "/p/a.conf", line: 3 });
    expect(parseNginxError("nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address in use)").message).toBe(
      "bind() to 0.0.0.0:80 failed (98: Address in use)",
    );
  });
});
