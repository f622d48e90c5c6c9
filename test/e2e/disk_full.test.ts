// A full disk during a pull: the daemon's root is a 40 MiB tmpfs, and images
// bigger than that are pulled (a big blob fills it while downloading; a
// decompression bomb fills it while unpacking; two layers fill it between
// them). Each pull fails with RESOURCE_EXHAUSTED naming the full disk, the
// store stays consistent (no orphans, nothing half-downloaded or half-unpacked
// left), the space comes back, and a small image still pulls afterwards.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { status } from "@grpc/grpc-js";
import { mkdirSync, readdirSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { ContainerState } from "../../src/protocol/types.ts";
import { CribError } from "../../src/errors.ts";
import { BlobStore } from "../../src/image/blob_store.ts";
import { containerConfig, criError, podConfig, runContainer, waitStatus } from "../helpers/cri.ts";
import { type CribInstance, startCrib, tempConfig } from "../helpers/daemon.ts";
import { busyboxLayer, pushImage, randomLayer, type PushedImage } from "../helpers/images.ts";
import { monitorPid } from "../helpers/leaks.ts";
import { startRegistry, type StartedRegistry } from "../helpers/registry.ts";

const MiB = 1024 * 1024;
let reg: StartedRegistry;
let crib: CribInstance;
let root: string;
let mounted = false;
let small: PushedImage;

const pull = (image: string) => crib.client.call("ImageService", "PullImage", { image: { image }, auth: null }, { timeoutMs: 120_000 });

/** Bytes in use on the tmpfs. */
function used(): number {
  const s = statfsSync(root);
  return (s.blocks - s.bfree) * s.bsize;
}

async function expectClean(): Promise<void> {
  const u = await crib.client.call("Crib", "StoreUsage", {});
  expect(u.orphan_blobs).toEqual([]);
  expect(u.orphan_layers).toEqual([]);
  expect(Number(u.ingest_bytes)).toBe(0);
  expect(readdirSync(join(root, "layers")).filter((n) => n.endsWith(".unpacking"))).toEqual([]);
  // Back to near empty: the metadata database and directories only (and what `small` holds once pulled).
  expect(used()).toBeLessThan(4 * MiB + Number(u.blob_bytes) + Number(u.layer_bytes));
}

beforeAll(async () => {
  reg = await startRegistry();
  small = await pushImage(reg, "full/small:1", { layers: [busyboxLayer()] });
  const t = tempConfig();
  root = join(t.dir, "root");
  mkdirSync(root);
  const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=40m", "crib-disk-full", root], { stderr: "pipe" });
  if (m.exitCode !== 0) throw new Error(`cannot mount a tmpfs at ${root}: ${m.stderr.toString()}`);
  mounted = true;
  crib = await startCrib({ root, log: { level: "info" } });
});

afterAll(async () => {
  if (crib) {
    for (const p of (await crib.client.call("RuntimeService", "ListPodSandbox", { filter: null }).catch(() => ({ items: [] }))).items) {
      await crib.client.call("RuntimeService", "RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
    }
    const mon = monitorPid(crib.state);
    await crib.stop();
    if (mon > 0) process.kill(mon, "SIGTERM");
  }
  if (mounted) Bun.spawnSync(["umount", "-l", root]);
  crib?.cleanup();
  await reg?.stop();
});

describe("a full disk during a pull", () => {
  test("a blob bigger than the disk: RESOURCE_EXHAUSTED naming the full disk; the partial download is gone", async () => {
    const big = await pushImage(reg, "full/big:1", { compression: "none", layers: [busyboxLayer(), randomLayer(48 * MiB, 31)] });
    const err = await criError(pull(big.ref));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain("disk full");
    expect(err.details).toContain(root);
    await expectClean();
  });

  test("a decompression bomb (a small zstd blob of 100 MiB of zeros): RESOURCE_EXHAUSTED while unpacking", async () => {
    const bomb = await pushImage(reg, "full/bomb:1", { compression: "zstd", layers: [[{ type: "file", path: "zeros", data: new Uint8Array(100 * MiB) }]] });
    expect(bomb.layers[0]!.size).toBeLessThan(MiB);
    const err = await criError(pull(bomb.ref));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/no space left|disk full/i);
    expect(err.details).toContain("zeros");
    await expectClean();
  });

  test("layers that fit one by one but not together", async () => {
    const two = await pushImage(reg, "full/two:1", { compression: "none", layers: [randomLayer(14 * MiB, 32), randomLayer(14 * MiB, 33)] });
    const err = await criError(pull(two.ref));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/no space left|disk full/i);
    await expectClean();
  });

  test("the blob store on its own: a download that fills the disk stops at once, its partial file removed", async () => {
    const dir = join(root, "direct-blob-store");
    const store = new BlobStore(dir);
    const chunk = new Uint8Array(MiB).fill(7);
    const size = 64 * MiB;
    let sent = 0;
    const opener = async () => ({
      async *[Symbol.asyncIterator]() {
        while (sent < size) {
          sent += chunk.length;
          yield chunk;
        }
      },
    });
    let err: unknown;
    try {
      await store.ensure({ digest: `sha256:${"1".repeat(64)}`, size }, opener);
    } catch (e) {
      err = e;
    }
    expect(err instanceof CribError && err.kind).toBe("resource_exhausted");
    expect((err as Error).message).toContain("disk full");
    expect((err as Error).message).toContain(dir);
    expect(sent).toBeLessThan(size); // no resume against a full disk
    expect(readdirSync(join(dir, "ingest"))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
    await expectClean();
  });

  test("afterwards a small image pulls and runs, and the daemon never went down", async () => {
    expect((await pull(small.ref)).image_ref).toBe(small.configDigest);
    const { id } = await runContainer(crib.client, podConfig("after-full"), containerConfig("ok", small.ref, ["sh", "-c", "echo fine"]));
    const st = await waitStatus(crib.client, id, (s) => s.state === ContainerState.CONTAINER_EXITED && s);
    expect(st.exit_code).toBe(0);
    expect(crib.proc.exitCode).toBeNull();
    await expectClean();
  });
});
