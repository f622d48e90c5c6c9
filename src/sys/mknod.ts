// mknod(2) for device nodes, fifos and overlayfs whiteouts (a 0/0 char device).

import { check, cstr, libcFunction, libcHas } from "./libc.ts";

// File type bits of st_mode.
export const S_IFMT = 0o170000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;

/** dev_t from major/minor, laid out as glibc's makedev() does. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffn) << 8n) | ((ma & 0xfffff000n) << 32n) | (mi & 0xffn) | ((mi & 0xffffff00n) << 12n);
}

/** The major number of a dev_t (as from fs.lstat's `rdev`). */
export function major(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n));
}

/** The minor number of a dev_t. */
export function minor(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number((d & 0xffn) | ((d >> 12n) & 0xffffff00n));
}

/**
 * mknod(2). `mode` holds the file type (S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG) and the
 * permission bits; the umask applies, as with any create.
 */
export function mknod(path: string, mode: number, devMajor = 0, devMinor = 0): void {
  const dev = makedev(devMajor, devMinor);
  const p = cstr(path, "path");
  let ret: number;
  // glibc exports mknod since 2.33; older ones only have __xmknod(_MKNOD_VER, ...).
  if (libcHas("mknod", { args: ["ptr", "u32", "u64"], returns: "i32" })) {
    ret = libcFunction("mknod", { args: ["ptr", "u32", "u64"], returns: "i32" })(p, mode >>> 0, dev) as number;
  } else {
    const devBuf = new BigUint64Array([dev]);
    ret = libcFunction("__xmknod", { args: ["i32", "ptr", "u32", "ptr"], returns: "i32" })(0, p, mode >>> 0, devBuf) as number;
  }
  check(ret, "mknod", () => `${JSON.stringify(path)}, mode=0o${mode.toString(8)}, ${devMajor}:${devMinor}`);
}
