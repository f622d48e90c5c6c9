// The metadata database: one SQLite file (WAL) under the root. Every change is
// a transaction, so a crash leaves the last committed state (ARCHITECTURE.md).
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** Schema migrations, applied in order; the index+1 is the schema version. */
const MIGRATIONS: string[] = [
  `CREATE TABLE images (
     id TEXT PRIMARY KEY,             -- config digest, the CRI image id
     manifest_digest TEXT NOT NULL,   -- platform manifest
     top_digest TEXT NOT NULL,        -- what the reference resolved to (index or manifest)
     config_media_type TEXT NOT NULL,
     size INTEGER NOT NULL,           -- manifest + config + compressed layers, as containerd reports
     layers TEXT NOT NULL,            -- JSON: [{digest, size, mediaType, diffID, chainID}]
     blobs TEXT NOT NULL,             -- JSON: every blob digest this image keeps alive
     pinned INTEGER NOT NULL DEFAULT 0,
     created_ns INTEGER NOT NULL
   );
   CREATE TABLE image_names (
     name TEXT PRIMARY KEY,           -- repo:tag or repo@digest
     image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
   );
   CREATE INDEX image_names_by_image ON image_names(image_id);
   CREATE TABLE layers (
     chain_id TEXT PRIMARY KEY,
     diff_id TEXT NOT NULL,
     blob_digest TEXT NOT NULL,
     parent TEXT,                     -- chain id of the layer below, or NULL
     bytes INTEGER NOT NULL,          -- unpacked bytes
     inodes INTEGER NOT NULL,         -- unpacked entries
     created_ns INTEGER NOT NULL
   );`,
  // Pods and containers. Configs are stored as their CRI protobuf encoding, so
  // they decode back exactly (int64 included). boot_id tells a reboot apart
  // from a daemon restart without trusting the clock.
  `CREATE TABLE pods (
     id TEXT PRIMARY KEY,
     name_key TEXT NOT NULL UNIQUE,    -- name_namespace_uid_attempt: one pod per key
     config BLOB NOT NULL,             -- runtime.v1.PodSandboxConfig
     runtime_handler TEXT NOT NULL,
     state INTEGER NOT NULL,           -- PodSandboxState
     created_ns INTEGER NOT NULL,
     namespaces TEXT NOT NULL,         -- JSON: {net?, ipc?, uts?, pid?} paths
     ips TEXT NOT NULL DEFAULT '[]',
     unclaimed INTEGER NOT NULL DEFAULT 0, -- created for a client that gave up: a retry gets it
     boot_id TEXT NOT NULL
   );
   CREATE TABLE containers (
     id TEXT PRIMARY KEY,
     pod_id TEXT NOT NULL REFERENCES pods(id),
     name_key TEXT NOT NULL UNIQUE,    -- pod_name_attempt
     config BLOB NOT NULL,             -- runtime.v1.ContainerConfig
     image_id TEXT NOT NULL,
     image_ref TEXT NOT NULL,          -- what the kubelet asked for
     state INTEGER NOT NULL,           -- ContainerState
     created_ns INTEGER NOT NULL,
     started_ns INTEGER NOT NULL DEFAULT 0,
     finished_ns INTEGER NOT NULL DEFAULT 0,
     exit_code INTEGER NOT NULL DEFAULT 0,
     reason TEXT NOT NULL DEFAULT '',
     message TEXT NOT NULL DEFAULT '',
     log_path TEXT NOT NULL,
     unclaimed INTEGER NOT NULL DEFAULT 0,
     boot_id TEXT NOT NULL
   );
   CREATE INDEX containers_by_pod ON containers(pod_id);`,
  // Signatures found when an image was pulled under a signedBy rule, kept so
  // CreateContainer can judge images on the node against a changed policy
  // without asking the registry.
  `CREATE TABLE image_signatures (
     manifest_digest TEXT NOT NULL,   -- the image's platform manifest
     payload BLOB NOT NULL,           -- simple-signing payload, exact bytes
     signature BLOB NOT NULL,         -- raw signature over the payload
     source TEXT NOT NULL,            -- where it was found, for messages
     PRIMARY KEY (manifest_digest, signature)
   );`,
  // The identity of each container's first process, read from /proc after create
  // (ContainerStatus.user): JSON {uid, gid, groups}, '' when it could not be read.
  // The images a container mounts as volumes (KEP-4639), which must stay: JSON [image id].
  `ALTER TABLE containers ADD COLUMN user TEXT NOT NULL DEFAULT '';
   ALTER TABLE containers ADD COLUMN image_volumes TEXT NOT NULL DEFAULT '[]';`,
];

export function openDatabase(root: string): Database {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const db = new Database(join(root, "crib.db"), { create: true, strict: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL"); // a committed pull survives power loss
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA busy_timeout = 5000");
  migrate(db);
  return db;
}

function migrate(db: Database): void {
  const row = db.query("PRAGMA user_version").get() as { user_version: number };
  for (let v = row.user_version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    })();
  }
}
