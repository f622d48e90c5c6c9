// mount(2) and umount2(2).

import { check, cstr, libcFunction } from "./libc.ts";

// <sys/mount.h> flags (Linux).
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_NOATIME = 0x400;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;

// umount2 flags.
export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const MNT_EXPIRE = 0x4;
export const UMOUNT_NOFOLLOW = 0x8;

/**
 * mount(2). `source`, `fstype` and `data` may be null (e.g. a propagation change
 * passes only target and flags).
 */
export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  const fn = libcFunction("mount", { args: ["ptr", "ptr", "ptr", "u64", "ptr"], returns: "i32" });
  const ret = fn(
    source === null ? null : cstr(source, "mount source"),
    cstr(target, "mount target"),
    fstype === null ? null : cstr(fstype, "mount fstype"),
    BigInt(flags),
    data === null ? null : cstr(data, "mount data"),
  ) as number;
  check(ret, "mount", () =>
    `source=${JSON.stringify(source)}, target=${JSON.stringify(target)}, fstype=${JSON.stringify(fstype)}, flags=0x${flags.toString(16)}, data=${JSON.stringify(data)}`,
  );
}

/** umount2(2): e.g. `umount2(path, MNT_DETACH)` for a lazy unmount. */
export function umount2(target: string, flags = 0): void {
  const fn = libcFunction("umount2", { args: ["ptr", "i32"], returns: "i32" });
  const ret = fn(cstr(target, "umount target"), flags) as number;
  check(ret, "umount2", () => `${JSON.stringify(target)}, flags=0x${flags.toString(16)}`);
}
