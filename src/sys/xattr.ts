// Extended attributes on a path without following a final symlink (l*xattr).

import { check, cstr, lastErrno, libcFunction } from "./libc.ts";
import { SysError } from "./errno.ts";

const ENODATA = 61;
const ERANGE = 34;

// setxattr flags.
export const XATTR_CREATE = 0x1;
export const XATTR_REPLACE = 0x2;

/** lsetxattr(2): set `name` to `value` on `path` itself (a symlink is not followed). */
export function lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
  const fn = libcFunction("lsetxattr", { args: ["ptr", "ptr", "ptr", "u64", "i32"], returns: "i32" });
  // A zero-length value still needs a valid pointer.
  const buf = value.length === 0 ? new Uint8Array(1) : value;
  const ret = fn(cstr(path, "path"), cstr(name, "xattr name"), buf, BigInt(value.length), flags) as number;
  check(ret, "lsetxattr", () => `${JSON.stringify(path)}, ${JSON.stringify(name)}, ${value.length} bytes`);
}

/** lgetxattr(2): the value of `name` on `path`, or undefined when it has none (ENODATA). */
export function lgetxattr(path: string, name: string): Uint8Array | undefined {
  const fn = libcFunction("lgetxattr", { args: ["ptr", "ptr", "ptr", "u64"], returns: "i64" });
  const p = cstr(path, "path");
  const n = cstr(name, "xattr name");
  // Ask for the size, then read; retry if the value grew in between (ERANGE).
  for (let attempt = 0; attempt < 5; attempt++) {
    const size = Number(fn(p, n, null, 0n) as bigint);
    if (size < 0) return getFailed(path, name);
    const buf = new Uint8Array(Math.max(size, 1));
    const got = Number(fn(p, n, buf, BigInt(buf.length)) as bigint);
    if (got >= 0) return buf.subarray(0, got);
    const errno = lastErrno();
    if (errno !== ERANGE) throw new SysError("lgetxattr", errno, `${JSON.stringify(path)}, ${JSON.stringify(name)}`);
  }
  throw new SysError("lgetxattr", ERANGE, `${JSON.stringify(path)}, ${JSON.stringify(name)}`);
}

function getFailed(path: string, name: string): undefined {
  const errno = lastErrno();
  if (errno === ENODATA) return undefined;
  throw new SysError("lgetxattr", errno, `${JSON.stringify(path)}, ${JSON.stringify(name)}`);
}

/** llistxattr(2): the attribute names on `path` (a symlink itself, not its target). */
export function llistxattr(path: string): string[] {
  const fn = libcFunction("llistxattr", { args: ["ptr", "ptr", "u64"], returns: "i64" });
  const p = cstr(path, "path");
  for (let attempt = 0; attempt < 5; attempt++) {
    const size = check(fn(p, null, 0n) as bigint, "llistxattr", () => JSON.stringify(path));
    if (size === 0) return [];
    const buf = new Uint8Array(size);
    const got = Number(fn(p, buf, BigInt(size)) as bigint);
    if (got >= 0) {
      return Buffer.from(buf.buffer, buf.byteOffset, got)
        .toString("utf8")
        .split("\0")
        .filter((s) => s !== "");
    }
    const errno = lastErrno();
    if (errno !== ERANGE) throw new SysError("llistxattr", errno, JSON.stringify(path));
  }
  throw new SysError("llistxattr", ERANGE, JSON.stringify(path));
}
