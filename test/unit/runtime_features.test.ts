import { describe, expect, test } from "bun:test";
import { parseProcStatus } from "../../src/container/process_identity.ts";
import { CRIB_IDMAP, decideFeatures, kernelVersion } from "../../src/container/runtime_features.ts";

const runc115 = { mountOptions: ["rbind", "ro", "rro"], linux: { namespaces: ["mount", "user"] } };
const runc12 = { ...runc115, linux: { namespaces: ["mount", "user"], mountExtensions: { idmap: { enabled: true } } } };
const cribIdmap = { supported: true, reason: "" };

describe("decideFeatures", () => {
  test("rro needs the runtime's option and mount_setattr (5.12)", () => {
    expect(decideFeatures("runc", runc115, [6, 1], CRIB_IDMAP).recursiveReadOnlyMounts).toEqual({ supported: true, reason: "" });
    expect(decideFeatures("runc", runc115, [5, 10], CRIB_IDMAP).recursiveReadOnlyMounts.reason).toContain("kernel 5.10 lacks mount_setattr");
    expect(decideFeatures("x", { mountOptions: ["ro"] }, [6, 1], CRIB_IDMAP).recursiveReadOnlyMounts.reason).toContain('runtime x does not list the mount option "rro"');
  });

  test("user namespaces: the runtime's idmap or crib's, a user namespace, kernel >= 5.19", () => {
    expect(decideFeatures("runc", runc12, [6, 1], CRIB_IDMAP).userNamespaces.supported).toBe(true);
    expect(decideFeatures("runc", runc115, [6, 1], cribIdmap).userNamespaces.supported).toBe(true);
    expect(decideFeatures("runc", runc115, [6, 1], { supported: false, reason: "crib cannot" }).userNamespaces.reason).toContain("cannot make id-mapped mounts");
    expect(decideFeatures("runc", runc12, [5, 15], CRIB_IDMAP).userNamespaces.reason).toContain("needs >= 5.19");
    expect(decideFeatures("r", { linux: { namespaces: ["mount"] } }, [6, 1], cribIdmap).userNamespaces.reason).toContain("does not support user namespaces");
  });

  test("a runtime without a features command supports nothing, saying why", () => {
    const d = decideFeatures("crun", new Error('"crun features" failed (exit 1)'), [6, 1], cribIdmap);
    expect(d.recursiveReadOnlyMounts).toEqual({ supported: false, reason: 'runtime crun: "crun features" failed (exit 1)' });
    expect(d.userNamespaces.supported).toBe(false);
  });

  test("kernelVersion", () => {
    expect(kernelVersion("6.18.44-fc-v1272")).toEqual([6, 18]);
    expect(kernelVersion("5.4.0")).toEqual([5, 4]);
    expect(kernelVersion("weird")).toEqual([0, 0]);
  });
});

describe("parseProcStatus", () => {
  test("effective ids and groups", () => {
    const text = "Name:\tsh\nUid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\nFDSize:\t64\nGroups:\t100 2000 3000 \nNStgid:\t1\n";
    expect(parseProcStatus(text)).toEqual({ uid: 1001, gid: 101, groups: [100, 2000, 3000] });
    expect(parseProcStatus("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n")).toEqual({ uid: 0, gid: 0, groups: [] });
    expect(parseProcStatus("Name:\tx\n")).toBeUndefined();
  });
});
