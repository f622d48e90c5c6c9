import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, defaultConfig, loadConfig, parseConfig } from "../../src/config/config.ts";
import { parseDuration } from "../../src/config/schema.ts";
import { tempDir } from "../helpers/tmp.ts";

describe("config", () => {
  test("empty file gives the embedded defaults", () => {
    expect(parseConfig("", "x.yaml")).toEqual(defaultConfig());
    expect(parseConfig("# only a comment\n", "x.yaml")).toEqual(defaultConfig());
  });

  test("a file holds only what differs; objects merge key by key", () => {
    const c = parseConfig("log: { level: debug }\npull:\n  maxConcurrentDownloads: 5\n", "x.yaml");
    expect(c.log.level).toBe("debug");
    expect(c.pull.maxConcurrentDownloads).toBe(5);
    expect(c.pull.progressTimeout).toBe(defaultConfig().pull.progressTimeout);
    expect(c.socket).toBe("/run/crib/crib.sock");
  });

  test("maps from the file replace the default map", () => {
    const c = parseConfig("runtime:\n  handlers:\n    kata: { path: /usr/bin/kata-runtime }\n", "x.yaml");
    expect(Object.keys(c.runtime.handlers)).toEqual(["kata"]);
    expect(c.runtime.default).toBe("runc");
  });

  test("registries in the k3s shape", () => {
    const c = parseConfig(
      `registries:
  mirrors:
    docker.io: { endpoint: ["https://mirror.example:5000", "http://127.0.0.1:5000"] }
  configs:
    "mirror.example:5000":
      auth: { username: u, password: p }
      tls: { insecureSkipVerify: true }
`,
      "x.yaml",
    );
    expect(c.registries.mirrors["docker.io"]?.endpoint).toHaveLength(2);
    expect(c.registries.configs["mirror.example:5000"]?.auth?.username).toBe("u");
  });

  const bad: [string, string, RegExp][] = [
    ["unknown top-level key", "sokcet: /x\n", /bad\.yaml: sokcet: unknown key/],
    ["unknown nested key", "log: { levle: debug }\n", /bad\.yaml: log\.levle: unknown key/],
    ["wrong type", "pull: { maxConcurrentDownloads: three }\n", /bad\.yaml: pull\.maxConcurrentDownloads: expected an integer/],
    ["out of range", "pull: { maxConcurrentDownloads: 0 }\n", /pull\.maxConcurrentDownloads: 0 is below the minimum 1/],
    ["bad enum", "log: { level: loud }\n", /log\.level: expected one of debug, info, warn, error/],
    ["relative path", "root: var/lib/crib\n", /root: "var\/lib\/crib" is not valid: must be an absolute path/],
    ["bad duration", "pull: { progressTimeout: soon }\n", /pull\.progressTimeout: "soon" is not a duration/],
    ["list expected", "cni: { binDirs: /opt/cni/bin }\n", /cni\.binDirs: expected a list/],
    ["bad list item", "cni: { binDirs: [/opt/cni/bin, 3] }\n", /cni\.binDirs\[1\]: expected a string/],
    ["bad mirror url", "registries: { mirrors: { docker.io: { endpoint: [mirror:5000] } } }\n", /registries\.mirrors\.docker\.io\.endpoint\[0\]/],
    ["not a mapping", "- a\n- b\n", /bad\.yaml: \(top level\): expected a mapping/],
    ["invalid YAML", "log: {\n", /bad\.yaml: invalid YAML/],
    ["duplicate key", "root: /a\nroot: /b\n", /bad\.yaml: invalid YAML: Map keys must be unique at line 2/],
  ];
  for (const [name, text, re] of bad) {
    test(`refuses ${name}, naming the key and the file`, () => {
      expect(() => parseConfig(text, "bad.yaml")).toThrow(ConfigError);
      expect(() => parseConfig(text, "bad.yaml")).toThrow(re);
    });
  }

  test("an absent default file means embedded defaults; an absent named file is an error", () => {
    const dir = tempDir("crib-cfg-");
    expect(() => loadConfig(join(dir, "nope.yaml"))).toThrow(/nope\.yaml: cannot read config/);
    const p = join(dir, "c.yaml");
    writeFileSync(p, "state: /tmp/x\n");
    const { config, source } = loadConfig(p);
    expect(config.state).toBe("/tmp/x");
    expect(source).toBe(p);
  });

  test("durations", () => {
    expect(parseDuration("1m")).toBe(60_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(() => parseDuration("5")).toThrow(/not a duration/);
    expect(() => parseDuration("-1s")).toThrow(/not a duration/);
  });
});
