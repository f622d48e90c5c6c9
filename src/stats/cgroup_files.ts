// Parsers for the files of cgroupfs (v1 and v2) and for the cgroup paths runc
// is given. Pure: text in, values out, so both versions are tested on fixtures.

/** `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat). */
export function parseKeyedFile(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const sp = line.indexOf(" ");
    if (sp <= 0) continue;
    const v = parseUint(line.slice(sp + 1).trim());
    if (v !== undefined) out.set(line.slice(0, sp), v);
  }
  return out;
}

/** A file holding one number, or "max" (v2 limits) which reads as undefined = unlimited. */
export function parseSingleValue(text: string): bigint | "max" | undefined {
  const t = text.trim();
  if (t === "max") return "max";
  return parseUint(t);
}

function parseUint(s: string): bigint | undefined {
  return /^\d+$/.test(s) ? BigInt(s) : undefined;
}

/** v1 memory limits are "unlimited" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages). */
const UNLIMITED_FROM = 1n << 62n;

/** A limit as a number, or undefined when the cgroup has none. */
export function limitValue(v: bigint | "max" | undefined): bigint | undefined {
  if (v === undefined || v === "max" || v >= UNLIMITED_FROM) return undefined;
  return v;
}

export interface PsiLine { avg10: number; avg60: number; avg300: number; /** Microseconds stalled, cumulative. */ total: bigint }
export interface Psi { some?: PsiLine; full?: PsiLine }

/** cpu.pressure / memory.pressure / io.pressure (v2): `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`. */
export function parsePsi(text: string): Psi {
  const out: Psi = {};
  for (const line of text.split("\n")) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== "some" && kind !== "full") continue;
    const kv = new Map(fields.map((f) => f.split("=", 2) as [string, string]));
    const total = parseUint(kv.get("total") ?? "");
    if (total === undefined) continue;
    out[kind] = { avg10: Number(kv.get("avg10") ?? 0), avg60: Number(kv.get("avg60") ?? 0), avg300: Number(kv.get("avg300") ?? 0), total };
  }
  return out;
}

/** The number of non-empty lines (cgroup.procs: one pid a line). */
export function countLines(text: string): number {
  let n = 0;
  for (const line of text.split("\n")) if (line.trim() !== "") n++;
  return n;
}

/**
 * Mount points of cgroup v1 hierarchies by controller, from /proc/self/mountinfo
 * ("cpu" and "cpuacct" may share one mount, "cpu,cpuacct", or not).
 */
export function parseCgroupV1Mounts(mountinfo: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(" ");
    const post = line.slice(sep + 3).split(" ");
    if (post[0] !== "cgroup") continue;
    const mountPoint = unescapeMountinfo(pre[4] ?? "");
    for (const opt of (post[2] ?? "").split(",")) {
      if (opt === "rw" || opt === "ro" || opt.includes("=")) continue;
      if (!out.has(opt)) out.set(opt, mountPoint);
    }
  }
  return out;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * A systemd slice as a path: "kubepods-burstable-pod1.slice" is
 * /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice.
 */
export function expandSlice(slice: string): string {
  if (slice === "" || slice === "-.slice") return "/";
  if (!slice.endsWith(".slice")) return `/${slice}`;
  const parts = slice.slice(0, -".slice".length).split("-");
  let path = "";
  let prefix = "";
  for (const p of parts) {
    prefix = prefix ? `${prefix}-${p}` : p;
    path += `/${prefix}.slice`;
  }
  return path;
}

/**
 * The path inside a cgroup hierarchy of a container's linux.cgroupsPath, as runc
 * resolves it: "/crib/crib-ID" (cgroupfs) as is; "parent.slice:prefix:name"
 * (systemd) as the scope "prefix-name.scope" under the expanded slice.
 */
export function cgroupRelativePath(cgroupsPath: string): string {
  const parts = cgroupsPath.split(":");
  if (parts.length === 3 && !cgroupsPath.startsWith("/")) {
    const [parent, prefix, name] = parts as [string, string, string];
    const unit = name.endsWith(".slice") ? name : `${prefix ? `${prefix}-` : ""}${name}.scope`;
    const base = expandSlice(parent || "system.slice");
    return base === "/" ? `/${unit}` : `${base}/${unit}`;
  }
  return cgroupsPath.startsWith("/") ? cgroupsPath : `/${cgroupsPath}`;
}

/** A pod's cgroup_parent as a path: a systemd slice name or a cgroupfs path. */
export function parentRelativePath(cgroupParent: string): string {
  return cgroupParent.endsWith(".slice") && !cgroupParent.includes("/") ? expandSlice(cgroupParent) : cgroupRelativePath(cgroupParent);
}

export interface NetDevCounters {
  name: string;
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  rxDropped: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  txDropped: bigint;
}

/** /proc/net/dev: two header lines, then `name: rx(8 fields) tx(8 fields)`. */
export function parseNetDev(text: string): NetDevCounters[] {
  const out: NetDevCounters[] = [];
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/).map((x) => parseUint(x));
    if (name === "" || f.length < 16 || f.some((x) => x === undefined)) continue;
    const n = f as bigint[];
    out.push({
      name,
      rxBytes: n[0]!, rxPackets: n[1]!, rxErrors: n[2]!, rxDropped: n[3]!,
      txBytes: n[8]!, txPackets: n[9]!, txErrors: n[10]!, txDropped: n[11]!,
    });
  }
  return out;
}
