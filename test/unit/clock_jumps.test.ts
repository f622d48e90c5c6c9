// Edge boards without an RTC boot in 1970 and the clock jumps when NTP
// answers: nothing may order or expire by the wall clock alone. (The daemon
// itself cannot run under a faked clock here: libfaketime is not installed
// and a time namespace does not move CLOCK_REALTIME.)
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerStore, type ContainerRecord } from "../../src/container/container_store.ts";
import { BlobStore } from "../../src/image/blob_store.ts";
import { PodStore, type PodRecord } from "../../src/pod/pod_store.ts";
import { openDatabase } from "../../src/state/db.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), "crib-clock-"));
  dirs.push(d);
  return d;
}

const YEAR_NS = 365n * 24n * 3600n * 1_000_000_000n;
const NOW_NS = 1_760_000_000n * 1_000_000_000n;

function pod(id: string, createdNs: bigint): PodRecord {
  return {
    id, nameKey: `${id}_ns_uid_0`, config: { metadata: { name: id, namespace: "ns", uid: id, attempt: 0 } } as PodRecord["config"],
    runtimeHandler: "runc", state: 0, createdNs, namespaces: {}, ips: [], unclaimed: false, bootId: "b",
  };
}

function ctr(id: string, podId: string, createdNs: bigint): ContainerRecord {
  return {
    id, podId, nameKey: `${podId}_${id}_0`, config: { metadata: { name: id, attempt: 0 } } as ContainerRecord["config"], imageId: "sha256:x", imageRef: "x",
    state: 0, createdNs, startedNs: 0n, finishedNs: 0n, exitCode: 0, reason: "", message: "", logPath: "", unclaimed: false, bootId: "b", imageVolumes: [],
  };
}

describe("a wall clock that jumps", () => {
  test("pods and containers list in the order they were made, whatever their timestamps say", () => {
    const db = openDatabase(temp());
    const pods = new PodStore(db);
    const ctrs = new ContainerStore(db);
    // Made in 2025, then the clock fell back to 1970, then jumped forward past now.
    pods.insert(pod("p1", NOW_NS));
    pods.insert(pod("p2", 1_000_000_000n));
    pods.insert(pod("p3", NOW_NS + YEAR_NS));
    expect(pods.list().map((p) => p.id)).toEqual(["p1", "p2", "p3"]);
    ctrs.insert(ctr("c1", "p1", NOW_NS));
    ctrs.insert(ctr("c2", "p1", 5n));
    ctrs.insert(ctr("c3", "p2", NOW_NS - YEAR_NS));
    expect(ctrs.list().map((c) => c.id)).toEqual(["c1", "c2", "c3"]);
    expect(ctrs.list("p1").map((c) => c.id)).toEqual(["c1", "c2"]);
    db.close();
  });

  test("partial downloads from 'the future' (the clock fell back) still age out", async () => {
    const root = temp();
    const ingest = join(root, "ingest");
    mkdirSync(ingest);
    const fresh = join(ingest, `${"a".repeat(64)}.partial`);
    const future = join(ingest, `${"b".repeat(64)}.partial`);
    const past = join(ingest, `${"c".repeat(64)}.partial`);
    for (const f of [fresh, future, past]) writeFileSync(f, "x");
    const now = Date.now() / 1000;
    utimesSync(future, now + 10 * 365 * 86400, now + 10 * 365 * 86400);
    utimesSync(past, now - 10 * 365 * 86400, now - 10 * 365 * 86400);
    expect(await new BlobStore(root).gcIngest(24 * 3600 * 1000)).toBe(2);
    expect(await Bun.file(fresh).exists()).toBe(true);
    expect(await Bun.file(future).exists()).toBe(false);
    expect(await Bun.file(past).exists()).toBe(false);
  });
});
