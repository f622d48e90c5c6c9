// Smoke test of the benchmark harness (no timing): it starts Debian's containerd in
// temp dirs, talks CRI to it, pulls a small image from a local registry, and stop()
// leaves no process, mount or dir behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ContainerdInstance, mountsUnder, pidsMentioning, startContainerd } from "../bench/containerd.ts";
import { formatTable, percentile, summarize } from "../bench/stats.ts";
import { busyboxLayer, type PushedImage, pushImage } from "../helpers/images.ts";
import { type StartedRegistry, startRegistry } from "../helpers/registry.ts";

let reg: StartedRegistry;
let image: PushedImage;
const started: ContainerdInstance[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  image = await pushImage(reg, "bench/busybox:smoke", { layers: [busyboxLayer()] });
});

afterAll(async () => {
  for (const c of started) await c.stop().catch(() => undefined);
  await reg?.stop();
});

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

describe("bench harness: containerd", () => {
  test("starts containerd with CRI, pulls from a plain-HTTP registry, stops cleanly", async () => {
    const c = await startContainerd({ registryHosts: [reg.host] });
    started.push(c);
    expect(alive(c.pid)).toBe(true);
    expect(c.dir.startsWith("/var/lib/containerd")).toBe(false);

    const v = await c.client.call("RuntimeService", "Version", { version: "v1" });
    expect(v.runtime_name).toBe("containerd");
    expect(v.runtime_api_version).toBe("v1");

    const pulled = await c.client.call("ImageService", "PullImage", { image: { image: image.ref } }, { timeoutMs: 120_000 });
    expect(pulled.image_ref).toMatch(/^sha256:[0-9a-f]{64}$/);
    const st = await c.client.call("ImageService", "ImageStatus", { image: { image: image.ref } });
    expect(st.image?.repo_tags).toContain(image.ref);

    // A mount left under the temp dir (as a pod's netns or rootfs could be) is removed too.
    const leftover = join(c.root, "leftover-mount");
    mkdirSync(leftover);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "tmpfs", leftover]).exitCode).toBe(0);
    expect(mountsUnder(c.dir)).toContain(leftover);

    await c.stop();
    expect(alive(c.pid)).toBe(false);
    expect(mountsUnder(c.dir)).toEqual([]);
    expect(pidsMentioning(c.socket)).toEqual([]);
    expect(existsSync(c.dir)).toBe(false);
  });
});

describe("bench harness: stats", () => {
  test("percentiles interpolate and tables align", () => {
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(summarize([2, 4]).max).toBe(4);
    const text = formatTable({ title: "t", headers: ["runtime", "ms", "MB/s"], rows: [["containerd", "700", "150.0"], ["crib", "not implemented yet"]] });
    expect(text.split("\n")).toEqual(["t", "runtime      ms   MB/s", "----------  ---  -----", "containerd  700  150.0", "crib        not implemented yet"]);
  });
});
