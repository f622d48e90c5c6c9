import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyCdiEdits, requestedCdiDevices, resolveCdiDevices } from "../../src/container/cdi.ts";
import type { OciSpec } from "../../src/container/spec/oci_types.ts";
import type { ContainerConfig } from "../../src/protocol/types.ts";

const baseSpec = (): OciSpec => ({
  ociVersion: "1.1.0",
  process: { user: { uid: 0, gid: 0, additionalGids: [0] }, args: ["sh"], env: ["PATH=/bin", "A=1"], cwd: "/" },
  root: { path: "/r" },
  mounts: [{ destination: "/proc", type: "proc", source: "proc" }, { destination: "/dev/pts", type: "devpts", source: "devpts" }],
  linux: { namespaces: [], resources: { devices: [{ allow: false, access: "rwm" }] } },
});

describe("CDI", () => {
  test("requested names: field and annotations, once each; bad names refused", () => {
    const config = { CDI_devices: [{ name: "a.com/x=1" }], annotations: { "cdi.k8s.io/p_1": "a.com/x=2, a.com/x=1", other: "a.com/x=3" } } as unknown as ContainerConfig;
    expect(requestedCdiDevices(config)).toEqual(["a.com/x=1", "a.com/x=2"]);
    expect(() => requestedCdiDevices({ CDI_devices: [{ name: "x=1" }], annotations: {} } as unknown as ContainerConfig)).toThrow("not a fully qualified name");
  });

  test("edits: env replaces by key, device node with the given numbers and its cgroup rule, mounts parent first, hooks, gids", async () => {
    const spec = baseSpec();
    await applyCdiEdits(spec, [
      { env: ["A=2", "B=3"], additionalGids: [44], hooks: [{ hookName: "createContainer", path: "/bin/hook", args: ["hook", "x"] }] },
      { deviceNodes: [{ path: "/dev/foo", type: "c", major: 240, minor: 1, fileMode: 0o660, permissions: "rw" }], mounts: [{ hostPath: "/h", containerPath: "/dev/x" }, { hostPath: "/h", containerPath: "/data" }] },
    ]);
    expect(spec.process.env).toEqual(["PATH=/bin", "A=2", "B=3"]);
    expect(spec.process.user.additionalGids).toEqual([0, 44]);
    expect(spec.linux.devices).toEqual([{ type: "c", path: "/dev/foo", major: 240, minor: 1, fileMode: 0o660 }]);
    expect(spec.linux.resources?.devices?.at(-1)).toEqual({ allow: true, type: "c", major: 240, minor: 1, access: "rw" });
    expect(spec.mounts.map((m) => m.destination)).toEqual(["/proc", "/data", "/dev/pts", "/dev/x"]);
    expect(spec.hooks).toEqual({ createContainer: [{ path: "/bin/hook", args: ["hook", "x"] }] });
    await expect(applyCdiEdits(baseSpec(), [{ hooks: [{ hookName: "later", path: "/x" }] }])).rejects.toThrow("is not one of");
    await expect(applyCdiEdits(baseSpec(), [{ deviceNodes: [{ path: "dev/rel" }] }])).rejects.toThrow("not an absolute path");
  });

  test("spec-wide edits apply once for several devices of one file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crib-cdi-unit-"));
    try {
      writeFileSync(join(dir, "s.json"), JSON.stringify({ cdiVersion: "0.6.0", kind: "a.com/x", containerEdits: { env: ["C=1"] }, devices: [{ name: "1", containerEdits: { env: ["D=1"] } }, { name: "2", containerEdits: { env: ["D=2"] } }] }));
      expect(await resolveCdiDevices(["a.com/x=1", "a.com/x=2"], [dir, join(dir, "missing")])).toEqual([{ env: ["C=1"] }, { env: ["D=1"] }, { env: ["D=2"] }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
