// Image and layer metadata in the database. Blobs and unpacked layers live on
// disk (blob_store.ts, layer_store.ts); this records which images hold them.
import type { Database } from "bun:sqlite";
import { nowNs } from "../state/boot.ts";

export interface LayerRef {
  digest: string; // compressed blob
  size: number;
  mediaType: string;
  diffID: string;
  chainID: string;
}

export interface ImageRecord {
  id: string;
  manifestDigest: string;
  topDigest: string;
  configMediaType: string;
  size: number;
  layers: LayerRef[];
  blobs: string[];
  pinned: boolean;
  createdNs: bigint;
  names: string[];
}

export interface LayerRecord {
  chainID: string;
  diffID: string;
  blobDigest: string;
  parent: string | null;
  bytes: number;
  inodes: number;
}

interface ImageRow {
  id: string; manifest_digest: string; top_digest: string; config_media_type: string;
  size: number; layers: string; blobs: string; pinned: number; created_ns: number | bigint;
}

export class ImageStore {
  constructor(private readonly db: Database) {}

  private toRecord(row: ImageRow): ImageRecord {
    return {
      id: row.id,
      manifestDigest: row.manifest_digest,
      topDigest: row.top_digest,
      configMediaType: row.config_media_type,
      size: row.size,
      layers: JSON.parse(row.layers) as LayerRef[],
      blobs: JSON.parse(row.blobs) as string[],
      pinned: row.pinned !== 0,
      createdNs: BigInt(row.created_ns),
      names: this.namesOf(row.id),
    };
  }

  private namesOf(id: string): string[] {
    return (this.db.query("SELECT name FROM image_names WHERE image_id = ? ORDER BY name").all(id) as { name: string }[]).map((r) => r.name);
  }

  get(id: string): ImageRecord | undefined {
    const row = this.db.query("SELECT * FROM images WHERE id = ?").get(id) as ImageRow | null;
    return row ? this.toRecord(row) : undefined;
  }

  /** The image a name (repo:tag or repo@digest) points to. */
  byName(name: string): ImageRecord | undefined {
    const row = this.db.query("SELECT i.* FROM images i JOIN image_names n ON n.image_id = i.id WHERE n.name = ?").get(name) as ImageRow | null;
    return row ? this.toRecord(row) : undefined;
  }

  /** Images whose id starts with a hex prefix (crictl accepts short ids). */
  byIdPrefix(prefix: string): ImageRecord[] {
    // A plain prefix compare: LIKE would take '%' and '_' as wildcards.
    const rows = this.db.query("SELECT * FROM images WHERE substr(id, 1, ?) = ? ORDER BY id").all(prefix.length + 7, `sha256:${prefix}`) as ImageRow[];
    return rows.map((r) => this.toRecord(r));
  }

  list(): ImageRecord[] {
    // Insertion order, not created_ns: the wall clock may jump back (boards without an RTC).
    return (this.db.query("SELECT * FROM images ORDER BY rowid").all() as ImageRow[]).map((r) => this.toRecord(r));
  }

  /**
   * Record a pulled image and point its names at it, in one transaction.
   * A name that pointed at another image moves (that image stays, untagged).
   */
  put(rec: Omit<ImageRecord, "names" | "createdNs" | "pinned">, names: string[], pinned: boolean, layers: LayerRecord[]): ImageRecord {
    this.db.transaction(() => {
      for (const l of layers) {
        this.db.query(
          `INSERT INTO layers (chain_id, diff_id, blob_digest, parent, bytes, inodes, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(chain_id) DO NOTHING`,
        ).run(l.chainID, l.diffID, l.blobDigest, l.parent, l.bytes, l.inodes, nowNs());
      }
      this.db.query(
        `INSERT INTO images (id, manifest_digest, top_digest, config_media_type, size, layers, blobs, pinned, created_ns)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest, top_digest = excluded.top_digest,
           blobs = (SELECT json_group_array(DISTINCT value) FROM (SELECT value FROM json_each(images.blobs) UNION SELECT value FROM json_each(excluded.blobs))),
           pinned = max(images.pinned, excluded.pinned)`,
      ).run(rec.id, rec.manifestDigest, rec.topDigest, rec.configMediaType, rec.size, JSON.stringify(rec.layers), JSON.stringify(rec.blobs), pinned ? 1 : 0, nowNs());
      for (const name of names) {
        this.db.query("INSERT INTO image_names (name, image_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id").run(name, rec.id);
      }
    })();
    return this.get(rec.id)!;
  }

  setPinned(id: string, pinned: boolean): void {
    this.db.query("UPDATE images SET pinned = ? WHERE id = ?").run(pinned ? 1 : 0, id);
  }

  /** Remove an image record and its names. Returns false if it was not there. */
  remove(id: string): boolean {
    return this.db.query("DELETE FROM images WHERE id = ?").run(id).changes > 0;
  }

  /** Remove one name; the image stays. */
  untag(name: string): void {
    this.db.query("DELETE FROM image_names WHERE name = ?").run(name);
  }

  layer(chainID: string): LayerRecord | undefined {
    const r = this.db.query("SELECT * FROM layers WHERE chain_id = ?").get(chainID) as
      | { chain_id: string; diff_id: string; blob_digest: string; parent: string | null; bytes: number; inodes: number }
      | null;
    return r ? { chainID: r.chain_id, diffID: r.diff_id, blobDigest: r.blob_digest, parent: r.parent, bytes: r.bytes, inodes: r.inodes } : undefined;
  }

  layers(): LayerRecord[] {
    return (this.db.query("SELECT chain_id FROM layers").all() as { chain_id: string }[]).map((r) => this.layer(r.chain_id)!);
  }

  removeLayer(chainID: string): void {
    this.db.query("DELETE FROM layers WHERE chain_id = ?").run(chainID);
  }

  /** Every blob and layer some image still holds (for garbage collection). */
  referenced(): { blobs: Set<string>; chainIDs: Set<string> } {
    const blobs = new Set<string>();
    const chainIDs = new Set<string>();
    for (const row of this.db.query("SELECT layers, blobs FROM images").all() as { layers: string; blobs: string }[]) {
      for (const b of JSON.parse(row.blobs) as string[]) blobs.add(b);
      for (const l of JSON.parse(row.layers) as LayerRef[]) chainIDs.add(l.chainID);
    }
    return { blobs, chainIDs };
  }

  /** Keep the signatures found for an image's manifest (added to those already kept). */
  putSignatures(manifestDigest: string, sigs: readonly { payload: Uint8Array; signature: Uint8Array; source: string }[]): void {
    this.db.transaction(() => {
      for (const s of sigs) {
        this.db.query("INSERT INTO image_signatures (manifest_digest, payload, signature, source) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
          .run(manifestDigest, s.payload, s.signature, s.source);
      }
    })();
  }

  signatures(manifestDigest: string): { payload: Uint8Array; signature: Uint8Array; source: string }[] {
    const rows = this.db.query("SELECT payload, signature, source FROM image_signatures WHERE manifest_digest = ?").all(manifestDigest) as { payload: Uint8Array; signature: Uint8Array; source: string }[];
    return rows.map((r) => ({ payload: new Uint8Array(r.payload), signature: new Uint8Array(r.signature), source: r.source }));
  }

  /** Forget signatures of manifests no image holds any more. */
  dropOrphanSignatures(): void {
    this.db.query("DELETE FROM image_signatures WHERE manifest_digest NOT IN (SELECT manifest_digest FROM images)").run();
  }

  usage(): { layerBytes: number; layerInodes: number } {
    const r = this.db.query("SELECT coalesce(sum(bytes), 0) AS b, coalesce(sum(inodes), 0) AS i FROM layers").get() as { b: number; i: number };
    return { layerBytes: r.b, layerInodes: r.i };
  }
}
