// File timestamps with nanosecond precision (fs.utimes takes float seconds, which
// loses the last digits of a layer's PAX mtimes).

import { check, cstr, libcFunction } from "./libc.ts";

export interface Timespec {
  /** Seconds since the epoch (may be negative). */
  sec: number;
  /** 0 ≤ nsec < 1e9. */
  nsec: number;
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;

function timespecs(atime: Timespec, mtime: Timespec): BigInt64Array {
  return new BigInt64Array([BigInt(atime.sec), BigInt(atime.nsec), BigInt(mtime.sec), BigInt(mtime.nsec)]);
}

const fmt = (t: Timespec): string => `${t.sec}.${String(t.nsec).padStart(9, "0")}`;

/** utimensat(AT_FDCWD, path, ...) without following a final symlink (so it also sets a symlink's own times). */
export function lutimens(path: string, atime: Timespec, mtime: Timespec): void {
  const fn = libcFunction("utimensat", { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" });
  const ret = fn(AT_FDCWD, cstr(path, "path"), timespecs(atime, mtime), AT_SYMLINK_NOFOLLOW) as number;
  check(ret, "utimensat", () => `${JSON.stringify(path)}, atime=${fmt(atime)}, mtime=${fmt(mtime)}`);
}

/** futimens(2): set the times of an open file. */
export function futimens(fd: number, atime: Timespec, mtime: Timespec): void {
  const fn = libcFunction("futimens", { args: ["i32", "ptr"], returns: "i32" });
  const ret = fn(fd, timespecs(atime, mtime)) as number;
  check(ret, "futimens", () => `fd=${fd}, atime=${fmt(atime)}, mtime=${fmt(mtime)}`);
}
