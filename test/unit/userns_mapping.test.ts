import { describe, expect, test } from "bun:test";
import { NamespaceMode, type UserNamespace } from "../../src/protocol/types.ts";
import { podUserNamespace, toContainer, toHost } from "../../src/pod/userns_mapping.ts";

const ns = (extra: Partial<UserNamespace> = {}): UserNamespace => ({
  mode: NamespaceMode.POD,
  uids: [{ host_id: 65536, container_id: 0, length: 65536 }],
  gids: [{ host_id: 65536, container_id: 0, length: 65536 }],
  ...extra,
});

describe("pod user namespace mapping", () => {
  test("NODE or unset: none; POD: the one range per kind", () => {
    expect(podUserNamespace(null, "x")).toBeUndefined();
    expect(podUserNamespace(ns({ mode: NamespaceMode.NODE }), "x")).toBeUndefined();
    expect(podUserNamespace(ns(), "x")).toEqual({ uids: { hostId: 65536, containerId: 0, size: 65536 }, gids: { hostId: 65536, containerId: 0, size: 65536 } });
  });

  test("refusals name the field", () => {
    expect(() => podUserNamespace(ns({ mode: NamespaceMode.CONTAINER }), "w")).toThrow("w.namespace_options.userns_options.mode CONTAINER is not supported");
    expect(() => podUserNamespace(ns({ uids: [] }), "w")).toThrow("w.namespace_options.userns_options.uids: exactly one mapping is supported, got 0");
    expect(() => podUserNamespace(ns({ gids: [{ host_id: 65536, container_id: 5, length: 10 }] }), "w")).toThrow("gids[0]: container id 0 (root) must be mapped");
    expect(() => podUserNamespace(ns({ uids: [{ host_id: 4294967000, container_id: 0, length: 65536 }] }), "w")).toThrow("run past");
  });

  test("ids both ways", () => {
    const r = { hostId: 100000, containerId: 0, size: 65536 };
    expect(toHost(r, 0)).toBe(100000);
    expect(toContainer(r, 100005)).toBe(5);
    expect(toContainer(r, 5)).toBeUndefined();
    expect(toContainer(r, 100000 + 65536)).toBeUndefined();
  });
});
