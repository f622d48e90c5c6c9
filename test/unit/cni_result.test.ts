import { describe, expect, test } from "bun:test";
import type { JsonObject } from "../../src/pod/cni/config.ts";
import { convertResult, CniResultError, describePluginError, parsePluginError, parseResult, podIps } from "../../src/pod/cni/result.ts";

// What Debian's bridge plugin printed for a 1.0.0 config (dual stack added).
const v100: JsonObject = {
  cniVersion: "1.0.0",
  interfaces: [
    { name: "cni0", mac: "a6:94:94:08:92:b6" },
    { name: "vetha9eb4dd0", mac: "3e:18:69:34:5c:fa" },
    { name: "eth0", mac: "96:86:88:8e:27:a5", sandbox: "/run/crib/pods/x/ns/net" },
  ],
  ips: [
    { interface: 2, address: "fd00:10::2/64", gateway: "fd00:10::1" },
    { interface: 2, address: "10.231.7.2/24", gateway: "10.231.7.1" },
  ],
  dns: {},
};

// The 0.4.0 shape: ips carry "version".
const v040 = {
  cniVersion: "0.4.0",
  interfaces: [{ name: "eth0", sandbox: "/var/run/netns/a" }],
  ips: [{ version: "4", address: "10.1.0.5/16", gateway: "10.1.0.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: { nameservers: ["10.1.0.1"] },
};

describe("CNI results", () => {
  test("1.0.0: interfaces and IPs; the first IPv4 comes first", () => {
    const r = parseResult(v100);
    expect(r.cniVersion).toBe("1.0.0");
    expect(r.interfaces.map((i) => i.name)).toEqual(["cni0", "vetha9eb4dd0", "eth0"]);
    expect(podIps(r, "eth0")).toEqual(["10.231.7.2", "fd00:10::2"]);
  });

  test("0.4.0: the same, from the older shape", () => {
    expect(podIps(parseResult(v040), "eth0")).toEqual(["10.1.0.5"]);
  });

  test("0.3.1 results and IPs without an interface index (IPAM output)", () => {
    const r = parseResult({ cniVersion: "0.3.1", ips: [{ version: "6", address: "fd00::5/64" }, { version: "4", address: "10.0.0.9/8" }] });
    expect(podIps(r, "eth0")).toEqual(["10.0.0.9", "fd00::5"]);
  });

  test("IPs on host-side interfaces are not the pod's", () => {
    const r = parseResult({
      cniVersion: "1.0.0",
      interfaces: [{ name: "cni0" }, { name: "eth0", sandbox: "/ns" }],
      ips: [{ address: "10.0.0.1/24", interface: 0 }, { address: "10.0.0.7/24", interface: 1 }],
    });
    expect(podIps(r, "eth0")).toEqual(["10.0.0.7"]);
  });

  test("duplicates are reported once", () => {
    const r = parseResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.7/24" }, { address: "10.0.0.7/24" }] });
    expect(podIps(r, "eth0")).toEqual(["10.0.0.7"]);
  });

  test.each([
    ["not an object", [], /not a JSON object/],
    ["no version", { ips: [] }, /no "cniVersion"/],
    ["an old version", { cniVersion: "0.2.0", ip4: { ip: "10.0.0.1/8" } }, /0.2.0 is not one crib reads/],
    ["an address without prefix", { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] }, /not an address in CIDR form/],
    ["a bad address", { cniVersion: "1.0.0", ips: [{ address: "10.0.0/8" }] }, /not an address in CIDR form/],
    ["a bad gateway", { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1/8", gateway: "x" }] }, /gateway "x" is not an IP/],
    ["an interface index out of range", { cniVersion: "1.0.0", interfaces: [], ips: [{ address: "10.0.0.1/8", interface: 0 }] }, /not an index into interfaces/],
    ["interfaces not a list", { cniVersion: "1.0.0", interfaces: {} }, /"interfaces" must be a list/],
  ])("rejects %s", (_what, data, message) => {
    expect(() => parseResult(data)).toThrow(CniResultError);
    expect(() => parseResult(data)).toThrow(message);
  });

  test("conversion between 1.0 and 0.4 shapes adds or drops ips[].version", () => {
    const to04 = convertResult(v100, "0.4.0");
    expect(to04.cniVersion).toBe("0.4.0");
    expect((to04.ips as { version: string }[]).map((i) => i.version)).toEqual(["6", "4"]);
    const back = convertResult(to04, "1.0.0");
    expect(back).toEqual(v100);
    expect(parseResult(to04).ips).toEqual(parseResult(v100).ips);
  });

  test("plugin errors: code, msg and details; well-known codes without msg", () => {
    const e = parsePluginError(JSON.stringify({ cniVersion: "1.0.0", code: 11, msg: "failed to allocate", details: "range full" }));
    expect(e).toEqual({ code: 11, msg: "failed to allocate", details: "range full" });
    expect(describePluginError(e!)).toBe("failed to allocate: range full (code 11)");
    expect(describePluginError({ code: 7, msg: "" })).toBe("invalid network config (code 7)");
    expect(parsePluginError("panic: oops")).toBeUndefined();
    expect(parsePluginError(JSON.stringify({ msg: "no code" }))).toBeUndefined();
  });
});
