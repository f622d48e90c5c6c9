// Container records in the database.
import type { Database } from "bun:sqlite";
import type { ContainerConfig } from "../protocol/types.ts";
import type { ProcessIdentity } from "./process_identity.ts";
import { decodeContainerConfig, encodeContainerConfig } from "../state/codec.ts";

export interface ContainerRecord {
  id: string;
  podId: string;
  nameKey: string;
  config: ContainerConfig;
  imageId: string;
  imageRef: string;
  state: number; // ContainerState
  createdNs: bigint;
  startedNs: bigint;
  finishedNs: bigint;
  exitCode: number;
  reason: string;
  message: string;
  logPath: string;
  unclaimed: boolean;
  bootId: string;
  /** The first process's identity, read after create; absent when it could not be read. */
  user?: ProcessIdentity;
  /** Ids of the images the container mounts as volumes. */
  imageVolumes: string[];
}

interface Row {
  id: string; pod_id: string; name_key: string; config: Uint8Array; image_id: string; image_ref: string; state: number;
  created_ns: number | bigint; started_ns: number | bigint; finished_ns: number | bigint; exit_code: number;
  reason: string; message: string; log_path: string; unclaimed: number; boot_id: string; user: string; image_volumes: string;
}

function toRecord(r: Row): ContainerRecord {
  return {
    id: r.id, podId: r.pod_id, nameKey: r.name_key, config: decodeContainerConfig(r.config), imageId: r.image_id, imageRef: r.image_ref,
    state: r.state, createdNs: BigInt(r.created_ns), startedNs: BigInt(r.started_ns), finishedNs: BigInt(r.finished_ns),
    exitCode: r.exit_code, reason: r.reason, message: r.message, logPath: r.log_path, unclaimed: r.unclaimed !== 0, bootId: r.boot_id,
    ...(r.user ? { user: JSON.parse(r.user) as ProcessIdentity } : {}),
    imageVolumes: JSON.parse(r.image_volumes) as string[],
  };
}

export interface ExitUpdate { state: number; finishedNs: bigint; exitCode: number; reason: string; message: string }

export class ContainerStore {
  constructor(private readonly db: Database) {}

  insert(c: ContainerRecord): void {
    this.db
      .query(`INSERT INTO containers (id, pod_id, name_key, config, image_id, image_ref, state, created_ns, started_ns, finished_ns, exit_code, reason, message, log_path, unclaimed, boot_id, user, image_volumes)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(c.id, c.podId, c.nameKey, encodeContainerConfig(c.config), c.imageId, c.imageRef, c.state, c.createdNs, c.startedNs, c.finishedNs, c.exitCode, c.reason, c.message, c.logPath, c.unclaimed ? 1 : 0, c.bootId, c.user ? JSON.stringify(c.user) : "", JSON.stringify(c.imageVolumes));
  }

  get(id: string): ContainerRecord | undefined {
    const r = this.db.query("SELECT * FROM containers WHERE id = ?").get(id) as Row | null;
    return r ? toRecord(r) : undefined;
  }

  byNameKey(key: string): ContainerRecord | undefined {
    const r = this.db.query("SELECT * FROM containers WHERE name_key = ?").get(key) as Row | null;
    return r ? toRecord(r) : undefined;
  }

  byIdPrefix(prefix: string): ContainerRecord[] {
    // A plain prefix compare: LIKE would take '%' and '_' in a client's id as wildcards.
    return (this.db.query("SELECT * FROM containers WHERE substr(id, 1, ?) = ? ORDER BY id").all(prefix.length, prefix) as Row[]).map(toRecord);
  }

  list(podId?: string): ContainerRecord[] {
    // Insertion order, not created_ns: the wall clock may jump back (boards without an RTC).
    const rows = podId
      ? (this.db.query("SELECT * FROM containers WHERE pod_id = ? ORDER BY rowid").all(podId) as Row[])
      : (this.db.query("SELECT * FROM containers ORDER BY rowid").all() as Row[]);
    return rows.map(toRecord);
  }

  /** A container that runs from the image or mounts it as a volume, if any (its layers must stay). */
  userOfImage(imageId: string): string | undefined {
    return (this.db.query("SELECT id FROM containers WHERE image_id = ? LIMIT 1").get(imageId) as { id: string } | null)?.id ?? this.volumeUserOfImage(imageId);
  }

  /** A container that mounts the image as a volume, if any. */
  volumeUserOfImage(imageId: string): string | undefined {
    const q = "SELECT id FROM containers WHERE EXISTS (SELECT 1 FROM json_each(containers.image_volumes) WHERE value = ?) LIMIT 1";
    return (this.db.query(q).get(imageId) as { id: string } | null)?.id;
  }

  setStarted(id: string, state: number, startedNs: bigint): void {
    this.db.query("UPDATE containers SET state = ?, started_ns = ? WHERE id = ?").run(state, startedNs, id);
  }

  setExited(id: string, u: ExitUpdate): void {
    this.db
      .query("UPDATE containers SET state = ?, finished_ns = ?, exit_code = ?, reason = ?, message = ? WHERE id = ?")
      .run(u.state, u.finishedNs, u.exitCode, u.reason, u.message, id);
  }

  setUnclaimed(id: string, unclaimed: boolean): void {
    this.db.query("UPDATE containers SET unclaimed = ? WHERE id = ?").run(unclaimed ? 1 : 0, id);
  }

  remove(id: string): void {
    this.db.query("DELETE FROM containers WHERE id = ?").run(id);
  }
}
