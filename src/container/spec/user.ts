// The container process's uid, gid and supplementary groups, from the CRI security
// context and the image's `User`, looked up in the container's own /etc/passwd and
// /etc/group. The rootfs is untrusted: its /etc/passwd may be a symlink to a host file,
// a FIFO, or a gigabyte of text, so every path is resolved inside the rootfs and every
// read is bounded.

import { lstat, open, readlink } from "node:fs/promises";
import { constants as fsConstants } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { errnoCode, errorMessage, invalidArgument } from "../../errors.ts";

/** Read limits for image-supplied passwd/group files. */
export const MAX_ID_FILE_BYTES = 4 << 20;
export const MAX_ID_FILE_LINES = 10_000;
export const MAX_ID_FILE_LINE_BYTES = 64 << 10;
/** Symlinks followed while resolving one path (Linux's own limit is 40 per lookup). */
const MAX_SYMLINKS = 255;
/** The largest valid id: (uid_t)-1 means "no change" to the kernel. */
export const MAX_ID = 0xffff_fffe;

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups, the primary gid first (as containerd sets them). */
  additionalGids: number[];
  /** The passwd name of uid, when the image has one. */
  username?: string;
}

export interface UserSpec {
  runAsUser?: bigint | number | null;
  runAsUsername?: string;
  runAsGroup?: bigint | number | null;
  /** The image config's `User`: "", "name", "uid", "name:group", "uid:gid". */
  imageUser: string;
  supplementalGroups: readonly (bigint | number)[];
  /** CRI SupplementalGroupsPolicy Strict: ignore the image's /etc/group memberships. */
  strictSupplementalGroups?: boolean;
}

/**
 * `path` resolved inside `root` as if `root` were "/": ".." stops at root, and symlinks
 * (absolute ones re-rooted at root, relative ones from their directory) are followed
 * component by component, never out of root. Components that do not exist are joined
 * as they are. Returns an absolute host path under root. With `refuseEscape`, a ".." that
 * would climb above root (from the path or a relative symlink) is an error instead.
 */
export async function secureJoin(root: string, path: string, opts: { refuseEscape?: boolean } = {}): Promise<string> {
  const base = resolvePath(root);
  const done: string[] = [];
  let todo = path.split("/");
  let links = 0;
  while (todo.length > 0) {
    const comp = todo.shift() as string;
    if (comp === "" || comp === ".") continue;
    if (comp === "..") {
      if (done.length === 0 && opts.refuseEscape) throw invalidArgument(`${path} leads out of ${base} (through ".." or a symlink)`);
      done.pop();
      continue;
    }
    const candidate = `${base}/${[...done, comp].join("/")}`;
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (err) {
      const code = errnoCode(err);
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      // Nothing there: the rest cannot hold symlinks either; keep it lexically.
      done.push(comp);
      for (const rest of todo) {
        if (rest === "" || rest === ".") continue;
        if (rest === "..") done.pop();
        else done.push(rest);
      }
      break;
    }
    if (!isLink) {
      done.push(comp);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw invalidArgument(`too many symlinks resolving ${path} inside ${base}`);
    const target = await readlink(candidate);
    if (target.startsWith("/")) done.length = 0;
    todo = [...target.split("/"), ...todo];
  }
  return done.length === 0 ? base : `${base}/${done.join("/")}`;
}

/**
 * The lines of a text file of the image, read safely: resolved inside rootfs, opened
 * without following a last-moment symlink, regular files only, at most
 * MAX_ID_FILE_BYTES / MAX_ID_FILE_LINES / MAX_ID_FILE_LINE_BYTES. Undefined when the
 * file does not exist.
 */
export async function readImageLines(rootfs: string, file: string): Promise<string[] | undefined> {
  let text: string;
  try {
    const host = await secureJoin(rootfs, file);
    const fh = await open(host, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw invalidArgument(`image file ${file} is not a regular file`);
      if (st.size > MAX_ID_FILE_BYTES) throw invalidArgument(`image file ${file} is larger than ${MAX_ID_FILE_BYTES} bytes`);
      // One byte more than fstat said, to notice a file that grows while it is read.
      const buf = Buffer.alloc(st.size + 1);
      let len = 0;
      while (len < buf.length) {
        const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
        if (bytesRead === 0) break;
        len += bytesRead;
      }
      if (len > st.size) throw invalidArgument(`image file ${file} changed while being read`);
      text = buf.subarray(0, len).toString("utf8");
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    if (code === "ELOOP") throw invalidArgument(`image file ${file} changed into a symlink while being read`, err);
    if (code !== undefined) throw invalidArgument(`cannot read image file ${file}: ${errorMessage(err)}`, err);
    throw err;
  }
  const lines = text.split("\n");
  if (lines.length > MAX_ID_FILE_LINES + 1 || (lines.length === MAX_ID_FILE_LINES + 1 && lines[MAX_ID_FILE_LINES] !== "")) {
    throw invalidArgument(`image file ${file} has more than ${MAX_ID_FILE_LINES} lines`);
  }
  for (const [i, line] of lines.entries()) {
    if (line.length > MAX_ID_FILE_LINE_BYTES) throw invalidArgument(`image file ${file} line ${i + 1} is longer than ${MAX_ID_FILE_LINE_BYTES} bytes`);
  }
  return lines;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/** passwd(5) lines; malformed lines and comments are skipped, as libc does. */
export function parsePasswd(lines: readonly string[]): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r$/, "");
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (f[0] === undefined || f[0] === "" || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? "" });
  }
  return out;
}

/** group(5) lines; malformed lines and comments are skipped. */
export function parseGroup(lines: readonly string[]): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r$/, "");
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const gid = parseId(f[2]);
    if (f[0] === undefined || f[0] === "" || gid === undefined) continue;
    const members = (f[3] ?? "").split(",").map((m) => m.trim()).filter((m) => m !== "");
    out.push({ name: f[0], gid, members });
  }
  return out;
}

function checkId(value: bigint | number, what: string): number {
  const n = typeof value === "bigint" ? value : BigInt(Math.trunc(value));
  if (typeof value === "number" && !Number.isInteger(value)) throw invalidArgument(`${what} ${value} is not an integer`);
  if (n < 0n || n > BigInt(MAX_ID)) throw invalidArgument(`${what} ${n} is out of range 0..${MAX_ID}`);
  return Number(n);
}

const isNumeric = (s: string) => /^\d+$/.test(s);

/** Split "user[:group]". */
function splitUserString(s: string): { user: string; group?: string } {
  const i = s.indexOf(":");
  return i < 0 ? { user: s } : { user: s.slice(0, i), group: s.slice(i + 1) };
}

/**
 * Kubernetes' precedence, as containerd and CRI-O apply it: run_as_username, else
 * run_as_user, else the image's User; run_as_group, else the group part of the image's
 * User (when the CRI user is the image's own, which is how the kubelet forwards it),
 * else the user's passwd gid, else 0 (a uid without a passwd entry gets gid 0, as in
 * containerd). Names must exist in the image's /etc/passwd or /etc/group.
 * Supplementary groups: the primary gid, the /etc/group entries that list the user's
 * name (unless strict), then the CRI supplemental_groups.
 */
export async function resolveUser(rootfs: string, spec: UserSpec): Promise<ResolvedUser> {
  const image = splitUserString(spec.imageUser.trim());
  let userStr: string;
  let fromImage = false;
  if (spec.runAsUsername !== undefined && spec.runAsUsername !== "") {
    userStr = spec.runAsUsername;
  } else if (spec.runAsUser !== undefined && spec.runAsUser !== null) {
    userStr = String(checkId(spec.runAsUser, "run_as_user"));
  } else {
    userStr = image.user;
    fromImage = true;
  }
  let groupStr: string | undefined;
  if (spec.runAsGroup !== undefined && spec.runAsGroup !== null) {
    groupStr = String(checkId(spec.runAsGroup, "run_as_group"));
  } else if (image.group !== undefined && image.group !== "" && (fromImage || userStr === image.user)) {
    groupStr = image.group;
  }
  if (userStr === "") userStr = "0";

  let passwd: PasswdEntry[] | undefined;
  const loadPasswd = async () => (passwd ??= parsePasswd((await readImageLines(rootfs, "/etc/passwd")) ?? []));
  let groups: GroupEntry[] | undefined;
  const loadGroups = async () => (groups ??= parseGroup((await readImageLines(rootfs, "/etc/group")) ?? []));

  let uid: number;
  let gid = 0;
  let username: string | undefined;
  const entries = await loadPasswd();
  if (isNumeric(userStr)) {
    uid = checkId(BigInt(userStr), "user id");
    const entry = entries.find((e) => e.uid === uid);
    if (entry !== undefined) {
      gid = entry.gid;
      username = entry.name;
    }
  } else {
    const entry = entries.find((e) => e.name === userStr);
    if (entry === undefined) {
      throw invalidArgument(`user ${JSON.stringify(userStr)} not found in the image's /etc/passwd`);
    }
    uid = entry.uid;
    gid = entry.gid;
    username = entry.name;
  }

  if (groupStr !== undefined) {
    if (isNumeric(groupStr)) {
      gid = checkId(BigInt(groupStr), "group id");
    } else {
      const g = (await loadGroups()).find((e) => e.name === groupStr);
      if (g === undefined) throw invalidArgument(`group ${JSON.stringify(groupStr)} not found in the image's /etc/group`);
      gid = g.gid;
    }
  }

  const additional: number[] = [gid];
  if (!spec.strictSupplementalGroups && username !== undefined) {
    for (const g of await loadGroups()) if (g.members.includes(username)) additional.push(g.gid);
  }
  for (const g of spec.supplementalGroups) additional.push(checkId(g, "supplemental group"));
  const result: ResolvedUser = { uid, gid, additionalGids: [...new Set(additional)] };
  if (username !== undefined) result.username = username;
  return result;
}
