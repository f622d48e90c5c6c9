// A small tar writer for test fixtures: ustar headers, with PAX extended headers
// whenever a field does not fit (long names/linknames, huge sizes or ids, fractional
// mtimes) and for xattrs (`SCHILY.xattr.<name>`).
//
// Paths are written verbatim on purpose: tests need hostile entries ("../x",
// "/etc/x", "a/../../b") to check that the unpacker rejects or contains them.

export type TarEntry =
  | { type: "file"; path: string; data?: string | Uint8Array; mode?: number; uid?: number; gid?: number; mtime?: number; xattrs?: Record<string, string> }
  | { type: "dir"; path: string; mode?: number; uid?: number; gid?: number; mtime?: number; xattrs?: Record<string, string> }
  | { type: "symlink"; path: string; target: string; uid?: number; gid?: number; mtime?: number }
  | { type: "hardlink"; path: string; target: string }
  | { type: "char" | "block"; path: string; major: number; minor: number; mode?: number }
  | { type: "fifo"; path: string; mode?: number };

/** Default mtime of every entry: 2020-01-01T00:00:00Z, in seconds since the epoch. */
export const DEFAULT_MTIME = Date.UTC(2020, 0, 1) / 1000;

const BLOCK = 512;
const encoder = new TextEncoder();

const TYPEFLAG: Record<TarEntry["type"], string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

/** Largest value an octal field of `width` bytes holds (width-1 digits and a NUL). */
function octalMax(width: number): number {
  return 8 ** (width - 1) - 1;
}

function writeString(header: Uint8Array, offset: number, width: number, value: Uint8Array): void {
  header.set(value.subarray(0, width), offset);
}

function writeOctal(header: Uint8Array, offset: number, width: number, value: number): void {
  // Values too large for the field are carried by a PAX record; the field gets its max.
  const v = Math.min(Math.max(0, Math.floor(value)), octalMax(width));
  const digits = v.toString(8).padStart(width - 1, "0");
  header.set(encoder.encode(digits), offset);
  header[offset + width - 1] = 0;
}

/** One PAX record: "<len> <key>=<value>\n", where <len> counts the whole record. */
function paxRecord(key: string, value: string): Uint8Array {
  const body = encoder.encode(` ${key}=${value}\n`);
  let digits = String(body.length).length;
  while (String(body.length + digits).length !== digits) digits++;
  return concat([encoder.encode(String(body.length + digits)), body]);
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function padding(size: number): Uint8Array {
  const rest = size % BLOCK;
  return new Uint8Array(rest === 0 ? 0 : BLOCK - rest);
}

interface HeaderFields {
  name: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Uint8Array;
  devmajor: number;
  devminor: number;
}

function header(f: HeaderFields): Uint8Array {
  const h = new Uint8Array(BLOCK);
  writeString(h, 0, 100, f.name);
  writeOctal(h, 100, 8, f.mode);
  writeOctal(h, 108, 8, f.uid);
  writeOctal(h, 116, 8, f.gid);
  writeOctal(h, 124, 12, f.size);
  writeOctal(h, 136, 12, f.mtime);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h[156] = f.typeflag.charCodeAt(0);
  writeString(h, 157, 100, f.linkname);
  writeString(h, 257, 6, encoder.encode("ustar\0"));
  writeString(h, 263, 2, encoder.encode("00"));
  writeOctal(h, 329, 8, f.devmajor);
  writeOctal(h, 337, 8, f.devminor);
  let sum = 0;
  for (const b of h) sum += b;
  writeString(h, 148, 8, encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "));
  return h;
}

function entryBytes(e: TarEntry): Uint8Array[] {
  const name = encoder.encode(e.path);
  const linkname = encoder.encode(e.type === "symlink" || e.type === "hardlink" ? e.target : "");
  const data =
    e.type === "file"
      ? typeof e.data === "string"
        ? encoder.encode(e.data)
        : (e.data ?? new Uint8Array(0))
      : new Uint8Array(0);
  const mode =
    e.type === "file" ? (e.mode ?? 0o644)
    : e.type === "dir" ? (e.mode ?? 0o755)
    : e.type === "symlink" ? 0o777
    : e.type === "hardlink" ? 0o644
    : e.type === "fifo" ? (e.mode ?? 0o644)
    : (e.mode ?? 0o666);
  const uid = "uid" in e ? (e.uid ?? 0) : 0;
  const gid = "gid" in e ? (e.gid ?? 0) : 0;
  const mtime = "mtime" in e ? (e.mtime ?? DEFAULT_MTIME) : DEFAULT_MTIME;
  const xattrs = "xattrs" in e ? (e.xattrs ?? {}) : {};
  const major = e.type === "char" || e.type === "block" ? e.major : 0;
  const minor = e.type === "char" || e.type === "block" ? e.minor : 0;

  const pax: Uint8Array[] = [];
  if (name.length > 100) pax.push(paxRecord("path", e.path));
  if (linkname.length > 100) pax.push(paxRecord("linkpath", e.type === "symlink" || e.type === "hardlink" ? e.target : ""));
  if (data.length > octalMax(12)) pax.push(paxRecord("size", String(data.length)));
  if (uid > octalMax(8)) pax.push(paxRecord("uid", String(uid)));
  if (gid > octalMax(8)) pax.push(paxRecord("gid", String(gid)));
  if (!Number.isInteger(mtime) || mtime < 0 || mtime > octalMax(12)) pax.push(paxRecord("mtime", String(mtime)));
  for (const key of Object.keys(xattrs).sort()) pax.push(paxRecord(`SCHILY.xattr.${key}`, xattrs[key] ?? ""));

  const out: Uint8Array[] = [];
  if (pax.length > 0) {
    const body = concat(pax);
    // The PAX header's own name is informational only; keep it short and harmless.
    const base = e.path.split("/").filter((s) => s !== "").pop() ?? "entry";
    out.push(
      header({
        name: encoder.encode(`PaxHeaders/${base}`).subarray(0, 100),
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: body.length,
        mtime: Number.isInteger(mtime) ? mtime : Math.floor(mtime),
        typeflag: "x",
        linkname: new Uint8Array(0),
        devmajor: 0,
        devminor: 0,
      }),
      body,
      padding(body.length),
    );
  }
  out.push(
    header({
      name: name.subarray(0, 100),
      mode,
      uid,
      gid,
      size: data.length,
      mtime,
      typeflag: TYPEFLAG[e.type],
      linkname: linkname.subarray(0, 100),
      devmajor: major,
      devminor: minor,
    }),
  );
  if (data.length > 0) out.push(data, padding(data.length));
  return out;
}

/** Serialises `entries` in order into a tar archive ending with two zero blocks. */
export function tarBytes(entries: TarEntry[]): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const e of entries) parts.push(...entryBytes(e));
  parts.push(new Uint8Array(2 * BLOCK));
  return concat(parts);
}
