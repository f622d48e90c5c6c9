import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CribError } from "../../src/errors.ts";
import { BlobStore, type BlobOpener } from "../../src/image/blob_store.ts";
import { digestOf } from "../../src/image/digest.ts";
import { rejection as rejectionOf } from "../helpers/reject.ts";

let root: string;
let store: BlobStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "crib-blobs-"));
  store = new BlobStore(root);
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function content(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

function descOf(bytes: Uint8Array) {
  return { digest: digestOf(bytes), size: bytes.length };
}

async function* chunks(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

/** An opener serving `bytes` from the asked offset, recording every call. */
function opener(bytes: Uint8Array, calls: number[] = []): BlobOpener {
  return async (offset) => {
    calls.push(offset);
    return chunks(bytes.subarray(offset));
  };
}

const rejection = (p: Promise<unknown>) => rejectionOf(p, CribError);

const ingestFiles = () => (existsSync(join(root, "ingest")) ? readdirSync(join(root, "ingest")) : []);

describe("BlobStore.ensure", () => {
  test("downloads, verifies and renames into blobs/sha256/<hex>", async () => {
    const bytes = content(10_000);
    const d = descOf(bytes);
    const progress: number[] = [];
    const r = await store.ensure(d, opener(bytes), { onProgress: (n, total) => progress.push(n, total) });
    expect(r).toEqual({ digest: d.digest, path: join(root, "blobs", "sha256", d.digest.slice(7)), size: 10_000, fetched: 10_000 });
    expect(new Uint8Array(readFileSync(r.path))).toEqual(bytes);
    expect(progress.slice(-2)).toEqual([10_000, 10_000]);
    expect(ingestFiles()).toEqual([]);
    expect(await store.has(d.digest)).toBe(true);
    expect(await store.size(d.digest)).toBe(10_000);

    // Present already: no open at all.
    const calls: number[] = [];
    const again = await store.ensure(d, opener(bytes, calls));
    expect(calls).toEqual([]);
    expect(again.fetched).toBe(0);
  });

  test("an empty blob", async () => {
    const bytes = new Uint8Array(0);
    const r = await store.ensure(descOf(bytes), opener(bytes));
    expect(r.size).toBe(0);
    expect(await store.has(digestOf(bytes))).toBe(true);
  });

  test("corrupt content is deleted and reported naming the digest", async () => {
    const bytes = content(5000);
    const d = descOf(bytes);
    const e = await rejection(store.ensure(d, opener(content(5000, 2))));
    expect(e.kind).toBe("failed_precondition");
    expect(e.message).toContain(d.digest);
    expect(e.message).toContain("corrupt");
    expect(ingestFiles()).toEqual([]);
    expect(await store.has(d.digest)).toBe(false);
  });

  test("a body longer than the descriptor's size is cut off and refused", async () => {
    const bytes = content(5000);
    const d = descOf(bytes);
    const longer = new Uint8Array(6000);
    longer.set(bytes);
    const e = await rejection(store.ensure(d, async () => chunks(longer)));
    expect(e.kind).toBe("failed_precondition");
    expect(e.message).toContain("longer than its descriptor's size");
    expect(e.message).toContain(d.digest);
    expect(ingestFiles()).toEqual([]);
    expect(await store.has(d.digest)).toBe(false);
  });

  test("a partial file from a killed process is resumed from its length", async () => {
    const bytes = content(8000);
    const d = descOf(bytes);
    mkdirSync(join(root, "ingest"), { recursive: true });
    writeFileSync(join(root, "ingest", `${d.digest.slice(7)}.partial`), bytes.subarray(0, 3000));
    const calls: number[] = [];
    const r = await store.ensure(d, opener(bytes, calls));
    expect(calls).toEqual([3000]);
    expect(r.fetched).toBe(5000);
    expect(new Uint8Array(readFileSync(r.path))).toEqual(bytes);
  });

  test("a corrupt partial file makes the result corrupt, which is deleted", async () => {
    const bytes = content(8000);
    const d = descOf(bytes);
    mkdirSync(join(root, "ingest"), { recursive: true });
    writeFileSync(join(root, "ingest", `${d.digest.slice(7)}.partial`), content(3000, 9));
    const e = await rejection(store.ensure(d, opener(bytes)));
    expect(e.message).toContain("corrupt");
    expect(ingestFiles()).toEqual([]);
    // The next try starts clean and succeeds.
    const calls: number[] = [];
    await store.ensure(d, opener(bytes, calls));
    expect(calls).toEqual([0]);
  });

  test("a server that ignores Range restarts the download from 0", async () => {
    const bytes = content(8000);
    const d = descOf(bytes);
    mkdirSync(join(root, "ingest"), { recursive: true });
    writeFileSync(join(root, "ingest", `${d.digest.slice(7)}.partial`), bytes.subarray(0, 3000));
    const calls: number[] = [];
    const r = await store.ensure(d, async (offset) => {
      calls.push(offset);
      return { body: chunks(bytes), offset: 0 };
    });
    expect(calls).toEqual([3000]);
    expect(r.fetched).toBe(8000);
    expect(new Uint8Array(readFileSync(r.path))).toEqual(bytes);
  });

  test("a body that breaks off is resumed from the current offset", async () => {
    const bytes = content(9000);
    const d = descOf(bytes);
    const calls: number[] = [];
    const r = await store.ensure(
      d,
      async (offset) => {
        calls.push(offset);
        const part = bytes.subarray(offset);
        if (calls.length === 1) {
          return (async function* () {
            yield part.slice(0, 4000);
            throw Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
          })();
        }
        if (calls.length === 2) return chunks(part.subarray(0, 2000)); // ends early
        return chunks(part);
      },
      { retryDelaysMs: [0] },
    );
    expect(calls).toEqual([0, 4000, 6000]);
    expect(r.fetched).toBe(9000);
  });

  test("resumes are bounded", async () => {
    const bytes = content(9000);
    const calls: number[] = [];
    const e = await rejection(
      store.ensure(
        descOf(bytes),
        async (offset) => {
          calls.push(offset);
          return chunks(bytes.subarray(offset, offset + 100));
        },
        { retryDelaysMs: [0], maxBodyRetries: 3 },
      ),
    );
    expect(calls).toEqual([0, 100, 200, 300]);
    expect(e.kind).toBe("registry_unavailable");
    expect(e.message).toContain("after 3 resumes");
    // What arrived is kept for the next pull.
    expect(ingestFiles()).toEqual([`${digestOf(bytes).slice(7)}.partial`]);
  });

  test("errors of the opener that are CribErrors are not retried", async () => {
    const bytes = content(100);
    let opens = 0;
    const e = await rejection(
      store.ensure(descOf(bytes), async () => {
        opens++;
        throw new CribError("not_found", "blob unknown");
      }),
    );
    expect(opens).toBe(1);
    expect(e.kind).toBe("not_found");
  });

  test("concurrent ensures of one digest share one download", async () => {
    const bytes = content(20_000);
    const d = descOf(bytes);
    let opens = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const open: BlobOpener = async (offset) => {
      opens++;
      await gate;
      return chunks(bytes.subarray(offset));
    };
    const progressB: number[] = [];
    const a = store.ensure(d, open);
    const b = store.ensure(d, open, { onProgress: (n) => progressB.push(n) });
    // Both callers are in (or past) the store's stat once the single download has opened.
    while (opens === 0) await Bun.sleep(1);
    release();
    const [ra, rb] = await Promise.all([a, b]);
    expect(opens).toBe(1);
    expect(ra.path).toBe(rb.path);
    expect(ra.fetched + rb.fetched).toBe(20_000);
    expect(progressB.at(-1)).toBe(20_000);
  });

  test("one caller cancelling leaves the shared download to the other; all cancelling stops it", async () => {
    const bytes = content(20_000);
    const d = descOf(bytes);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let openSignal: AbortSignal | undefined;
    const open: BlobOpener = async (offset, signal) => {
      openSignal = signal;
      await gate;
      return chunks(bytes.subarray(offset));
    };
    const ca = new AbortController();
    const a = store.ensure(d, open, { signal: ca.signal });
    const b = store.ensure(d, open);
    ca.abort(new Error("kubelet gave up"));
    await expect(a).rejects.toThrow("kubelet gave up");
    release();
    expect((await b).size).toBe(20_000);

    // Now a lone caller cancels: the opener sees its signal aborted.
    const other = content(1000, 5);
    const cc = new AbortController();
    const never = new Promise<never>(() => {});
    let opened!: () => void;
    const openCalled = new Promise<void>((r) => (opened = r));
    const c = store.ensure(descOf(other), async (_o, signal) => {
      openSignal = signal;
      opened();
      return never;
    }, { signal: cc.signal });
    // Abort only once the download has really started (a sleep raced on a loaded CI machine).
    await openCalled;
    cc.abort(new Error("cancelled"));
    await expect(c).rejects.toThrow("cancelled");
    expect(openSignal?.aborted).toBe(true);
  });

  test("stall detection: a trickle aborts with deadline_exceeded", async () => {
    const bytes = content(100_000);
    const d = descOf(bytes);
    const slow = async function* (signal: AbortSignal) {
      for (let i = 0; i < bytes.length && !signal.aborted; i++) {
        yield bytes.subarray(i, i + 1);
        await Bun.sleep(2);
      }
    };
    const e = await rejection(store.ensure(d, async (_o, signal) => slow(signal), { progressTimeoutMs: 20, minBytesPerSecond: 1_000_000 }));
    expect(e.kind).toBe("deadline_exceeded");
    expect(e.message).toMatch(new RegExp(`^pull of ${d.digest} stalled: \\d+ bytes in the last 0.02s`));
    // The partial download stays for a resume.
    expect(ingestFiles()).toEqual([`${d.digest.slice(7)}.partial`]);
  });

  test("stopped for lack of space (by the unpack it feeds): the partial is removed, not kept for a resume", async () => {
    const bytes = content(50_000);
    const d = descOf(bytes);
    const ac = new AbortController();
    const src = async function* (signal: AbortSignal) {
      for (let i = 0; i < bytes.length && !signal.aborted; i += 1000) {
        yield bytes.subarray(i, i + 1000);
        if (i === 20_000) ac.abort(new CribError("resource_exhausted", "disk full: no space left for layer x"));
        await Bun.sleep(1);
      }
    };
    const e = await rejection(store.ensure(d, async (_o, signal) => src(signal), { signal: ac.signal }));
    expect(e.kind).toBe("resource_exhausted");
    expect(ingestFiles()).toEqual([]);
  });

  test("stall detection: a source that never answers", async () => {
    const bytes = content(1000);
    const d = descOf(bytes);
    const e = await rejection(
      store.ensure(d, () => new Promise<never>(() => {}), { progressTimeoutMs: 10, minBytesPerSecond: 0 }),
    );
    expect(e.kind).toBe("deadline_exceeded");
    expect(e.message).toContain("stalled: 0 bytes in the last 0.01s");
  });

  test("an existing blob whose size disagrees with the descriptor is reported", async () => {
    const bytes = content(100);
    await store.writeBytes(digestOf(bytes), bytes);
    const e = await rejection(store.ensure({ digest: digestOf(bytes), size: 99 }, opener(bytes)));
    expect(e.message).toContain("descriptor says 99");
  });
});

describe("BlobStore small blobs and housekeeping", () => {
  test("writeBytes, readBytes, list, delete", async () => {
    const a = new TextEncoder().encode('{"a":1}');
    const b = new TextEncoder().encode('{"b":2}');
    await store.writeBytes(digestOf(a), a);
    await store.writeBytes(digestOf(b), b);
    await store.writeBytes(digestOf(b), b); // idempotent
    expect(await store.readBytes(digestOf(a), 1024)).toEqual(a);
    expect(await store.list()).toEqual([digestOf(a), digestOf(b)].sort());
    expect(await store.delete(digestOf(a))).toBe(true);
    expect(await store.delete(digestOf(a))).toBe(false);
    expect(await store.list()).toEqual([digestOf(b)]);
    expect(ingestFiles()).toEqual([]);
  });

  test("refusals", async () => {
    const a = new TextEncoder().encode("abc");
    expect((await rejection(store.writeBytes(digestOf("xyz"), a))).kind).toBe("failed_precondition");
    await store.writeBytes(digestOf(a), a);
    expect((await rejection(store.readBytes(digestOf(a), 2))).kind).toBe("resource_exhausted");
    expect((await rejection(store.size(digestOf("nothing")))).kind).toBe("not_found");
    expect(() => store.path("sha256:../../etc/passwd")).toThrow(/invalid digest/);
    expect((await rejection(store.has("md5:abc"))).kind).toBe("invalid_argument");
    // Bytes changed on disk are caught when read.
    writeFileSync(store.path(digestOf(a)), "abd");
    expect((await rejection(store.readBytes(digestOf(a), 100))).message).toContain("corrupt on disk");
  });

  test("gcIngest removes only old abandoned files", async () => {
    mkdirSync(join(root, "ingest"), { recursive: true });
    const old = join(root, "ingest", `${"a".repeat(64)}.partial`);
    const fresh = join(root, "ingest", `${"b".repeat(64)}.partial`);
    writeFileSync(old, "x");
    writeFileSync(fresh, "y");
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(old, past, past);
    expect(await store.gcIngest(60_000)).toBe(1);
    expect(ingestFiles()).toEqual([`${"b".repeat(64)}.partial`]);
    expect(await new BlobStore(join(root, "absent")).gcIngest(0)).toBe(0);
  });
});
