import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CniConfigError, compareVersions, networkFromObject, networkToObject, parseNetworkConfig, supportsCheck } from "../../src/pod/cni/config.ts";

const bridge = { type: "bridge", bridge: "cni0", ipam: { type: "host-local", subnet: "10.1.0.0/24" } };

describe("CNI network config", () => {
  test("a list: name, version, plugins with their IPAM type and capabilities", () => {
    const list = parseNetworkConfig(
      JSON.stringify({ cniVersion: "1.0.0", name: "net-1", plugins: [bridge, { type: "portmap", capabilities: { portMappings: true, bandwidth: false } }] }),
      "/x/10-net.conflist",
    );
    expect(list.name).toBe("net-1");
    expect(list.cniVersion).toBe("1.0.0");
    expect(list.disableCheck).toBe(false);
    expect(list.plugins.map((p) => [p.type, p.ipamType, p.capabilities])).toEqual([
      ["bridge", "host-local", []],
      ["portmap", undefined, ["portMappings"]],
    ]);
  });

  test("a single .conf is wrapped into a one-plugin list, without its name and version", () => {
    const list = parseNetworkConfig(JSON.stringify({ cniVersion: "0.4.0", name: "single", ...bridge }), "/x/10-single.conf");
    expect(list.name).toBe("single");
    expect(list.cniVersion).toBe("0.4.0");
    expect(list.plugins).toHaveLength(1);
    expect(list.plugins[0]!.raw).toEqual(bridge);
  });

  test("a .json file may hold a list", () => {
    expect(parseNetworkConfig(JSON.stringify({ cniVersion: "0.3.1", name: "j", plugins: [bridge] }), "/x/a.json").plugins[0]!.type).toBe("bridge");
  });

  test("disableCheck (also as a string, as libcni accepts) and CHECK from 0.4.0 on", () => {
    const mk = (v: string, disableCheck?: unknown) => networkFromObject({ cniVersion: v, name: "n", plugins: [bridge], ...(disableCheck === undefined ? {} : { disableCheck: disableCheck as boolean }) });
    expect(supportsCheck(mk("1.0.0"))).toBe(true);
    expect(supportsCheck(mk("0.4.0"))).toBe(true);
    expect(supportsCheck(mk("0.3.1"))).toBe(false);
    expect(supportsCheck(mk("1.0.0", true))).toBe(false);
    expect(supportsCheck(mk("1.0.0", "true"))).toBe(false);
    expect(supportsCheck(mk("1.0.0", "false"))).toBe(true);
  });

  test("round trip through the cache shape", () => {
    const list = networkFromObject({ cniVersion: "1.0.0", name: "n", disableCheck: true, plugins: [bridge] });
    expect(networkFromObject(networkToObject(list))).toEqual(list);
  });

  test.each([
    ["not JSON", "{", "x.conflist", /not valid JSON/],
    ["not an object", "[]", "x.conf", /expected a JSON object/],
    ["conflist without plugins", JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "bridge" }), "x.conflist", /needs a "plugins" list/],
    ["neither list nor plugin", JSON.stringify({ cniVersion: "1.0.0", name: "n" }), "x.conf", /neither a list/],
    ["bad name", JSON.stringify({ cniVersion: "1.0.0", name: "-x", plugins: [bridge] }), "x.conflist", /"name" must start/],
    ["name with a slash", JSON.stringify({ cniVersion: "1.0.0", name: "a/b", plugins: [bridge] }), "x.conflist", /"name" must start/],
    ["no version", JSON.stringify({ name: "n", plugins: [bridge] }), "x.conflist", /"cniVersion" is missing/],
    ["old version", JSON.stringify({ cniVersion: "0.2.0", name: "n", plugins: [bridge] }), "x.conflist", /cniVersion 0.2.0 is not supported/],
    ["empty plugins", JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [] }), "x.conflist", /"plugins" is empty/],
    ["plugin type with a path", JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "../bin/sh" }] }), "x.conflist", /plugin 0: "type" must be a plugin binary name/],
    ["ipam type with a path", JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "bridge", ipam: { type: "/bin/x" } }] }), "x.conflist", /"ipam.type" must be/],
    ["capabilities not an object", JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "portmap", capabilities: ["portMappings"] }] }), "x.conflist", /"capabilities" must be an object/],
  ])("rejects %s", (_what, text, file, message) => {
    expect(() => parseNetworkConfig(text, file)).toThrow(CniConfigError);
    expect(() => parseNetworkConfig(text, file)).toThrow(message);
  });

  test("compareVersions", () => {
    expect(compareVersions("0.4.0", "1.0.0")).toBeLessThan(0);
    expect(compareVersions("1.0.0", "1.0.0")).toBe(0);
    expect(compareVersions("1.1.0", "1.0.0")).toBeGreaterThan(0);
    expect(compareVersions("0.3.1", "0.3.0")).toBeGreaterThan(0);
  });

  test("the documented bridge example parses", () => {
    const path = join(import.meta.dir, "../../docs/cni-bridge.conflist");
    const list = parseNetworkConfig(readFileSync(path, "utf8"), path);
    expect(list.plugins.map((p) => p.type)).toEqual(["bridge", "portmap", "bandwidth"]);
    expect(list.plugins[1]!.capabilities).toEqual(["portMappings"]);
  });
});
