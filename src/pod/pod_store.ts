// Pod sandbox records in the database.
import type { Database } from "bun:sqlite";
import type { PodSandboxConfig } from "../protocol/types.ts";
import { decodePodConfig, encodePodConfig } from "../state/codec.ts";

export interface PodNamespaces {
  net?: string;
  ipc?: string;
  uts?: string;
  pid?: string;
  /** PID 1 of a shared PID namespace. */
  infraPid?: number;
  /** The pod's user namespace (hostUsers: false), which owns its net, ipc and uts namespaces. */
  user?: string;
}

export interface PodRecord {
  id: string;
  nameKey: string;
  config: PodSandboxConfig;
  runtimeHandler: string;
  state: number; // PodSandboxState
  createdNs: bigint;
  namespaces: PodNamespaces;
  ips: string[];
  unclaimed: boolean;
  bootId: string;
}

interface Row {
  id: string; name_key: string; config: Uint8Array; runtime_handler: string; state: number;
  created_ns: number | bigint; namespaces: string; ips: string; unclaimed: number; boot_id: string;
}

function toRecord(r: Row): PodRecord {
  return {
    id: r.id,
    nameKey: r.name_key,
    config: decodePodConfig(r.config),
    runtimeHandler: r.runtime_handler,
    state: r.state,
    createdNs: BigInt(r.created_ns),
    namespaces: JSON.parse(r.namespaces) as PodNamespaces,
    ips: JSON.parse(r.ips) as string[],
    unclaimed: r.unclaimed !== 0,
    bootId: r.boot_id,
  };
}

export class PodStore {
  constructor(private readonly db: Database) {}

  insert(p: PodRecord): void {
    this.db
      .query(`INSERT INTO pods (id, name_key, config, runtime_handler, state, created_ns, namespaces, ips, unclaimed, boot_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(p.id, p.nameKey, encodePodConfig(p.config), p.runtimeHandler, p.state, p.createdNs, JSON.stringify(p.namespaces), JSON.stringify(p.ips), p.unclaimed ? 1 : 0, p.bootId);
  }

  get(id: string): PodRecord | undefined {
    const r = this.db.query("SELECT * FROM pods WHERE id = ?").get(id) as Row | null;
    return r ? toRecord(r) : undefined;
  }

  byNameKey(key: string): PodRecord | undefined {
    const r = this.db.query("SELECT * FROM pods WHERE name_key = ?").get(key) as Row | null;
    return r ? toRecord(r) : undefined;
  }

  byIdPrefix(prefix: string): PodRecord[] {
    // A plain prefix compare: LIKE would take '%' and '_' in a client's id as wildcards.
    return (this.db.query("SELECT * FROM pods WHERE substr(id, 1, ?) = ? ORDER BY id").all(prefix.length, prefix) as Row[]).map(toRecord);
  }

  list(): PodRecord[] {
    // Insertion order, not created_ns: the wall clock may jump back (boards without an RTC).
    return (this.db.query("SELECT * FROM pods ORDER BY rowid").all() as Row[]).map(toRecord);
  }

  setState(id: string, state: number): void {
    this.db.query("UPDATE pods SET state = ? WHERE id = ?").run(state, id);
  }

  setNamespaces(id: string, ns: PodNamespaces): void {
    this.db.query("UPDATE pods SET namespaces = ? WHERE id = ?").run(JSON.stringify(ns), id);
  }

  setIps(id: string, ips: string[]): void {
    this.db.query("UPDATE pods SET ips = ? WHERE id = ?").run(JSON.stringify(ips), id);
  }

  /** The pod's network and namespaces are released (stopped): no IPs, no namespace paths. */
  setReleased(id: string): void {
    this.db.query("UPDATE pods SET ips = '[]', namespaces = '{}' WHERE id = ?").run(id);
  }

  setUnclaimed(id: string, unclaimed: boolean): void {
    this.db.query("UPDATE pods SET unclaimed = ? WHERE id = ?").run(unclaimed ? 1 : 0, id);
  }

  remove(id: string): void {
    this.db.query("DELETE FROM pods WHERE id = ?").run(id);
  }
}
