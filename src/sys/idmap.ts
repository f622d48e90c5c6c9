// Id-mapped mounts (Linux >= 5.12; overlayfs on id-mapped layers >= 5.19) and the
// process that owns a new user namespace.
//
// open_tree(2), mount_setattr(2) and move_mount(2) go through syscall(2): glibc only
// wraps them from 2.36 on. Their numbers are the same on x86_64 and arm64 (the new
// syscalls share one table). A user namespace cannot be entered by this multi-threaded
// process (unshare/setns of CLONE_NEWUSER need a single thread), so a child is cloned
// straight into new namespaces running libc's pause(): no JS runs in it, and it is
// killed once its namespaces are pinned.

import { ptr, type Pointer } from "bun:ffi";
import { check, cstr, libcFunction } from "./libc.ts";
import { CLONE_NEWUSER } from "./namespace.ts";

const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const SYS_MOUNT_SETATTR = 442;

const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const AT_RECURSIVE = 0x8000;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOUNT_ATTR_IDMAP = 0x00100000;
const SIGCHLD = 17;

type Syscall = (...args: unknown[]) => unknown;
const syscall = (): Syscall => libcFunction("syscall", { args: ["i64", "i64", "ptr", "i64", "ptr", "i64"], returns: "i64" });

/**
 * A detached copy of the mount tree at `path` (with its submounts when `recursive`),
 * id-mapped through the user namespace behind `usernsFd`, attached at `target`
 * (an existing directory or file). Files owned by id N on disk then show as the host id
 * the namespace maps N to.
 */
export function bindIdmapped(path: string, target: string, usernsFd: number, recursive: boolean): void {
  const sc = syscall();
  const fd = check(
    sc(BigInt(SYS_OPEN_TREE), BigInt(AT_FDCWD), cstr(path, "path"), BigInt(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0)), null, 0n) as bigint,
    "open_tree",
    () => JSON.stringify(path),
  );
  const close = libcFunction("close", { args: ["i32"], returns: "i32" });
  try {
    // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
    const attr = new BigUint64Array([BigInt(MOUNT_ATTR_IDMAP), 0n, 0n, BigInt(usernsFd)]);
    const empty = cstr("", "path");
    check(
      sc(BigInt(SYS_MOUNT_SETATTR), BigInt(fd), empty, BigInt(AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0)), ptr(attr), BigInt(attr.byteLength)) as bigint,
      "mount_setattr",
      () => `${JSON.stringify(path)}, MOUNT_ATTR_IDMAP`,
    );
    check(
      sc(BigInt(SYS_MOVE_MOUNT), BigInt(fd), empty, BigInt(AT_FDCWD), cstr(target, "target"), BigInt(MOVE_MOUNT_F_EMPTY_PATH)) as bigint,
      "move_mount",
      () => `${JSON.stringify(path)} -> ${JSON.stringify(target)}`,
    );
  } finally {
    close(fd);
  }
}

/** Size of the cloned child's stack: it only runs pause(). */
const CHILD_STACK = 64 * 1024;

/**
 * A child process in a new user namespace (plus the CLONE_NEW* `extraFlags`, which the
 * new user namespace then owns), parked in pause(). The caller writes its uid_map and
 * gid_map, pins what it needs, and SIGKILLs and reaps it.
 */
export function cloneIntoNewUserNamespace(extraFlags: number): number {
  const pause = libcFunction("dlsym", { args: ["ptr", "ptr"], returns: "ptr" })(null, cstr("pause", "symbol")) as Pointer | null;
  if (pause === null) throw new Error("libc has no pause()");
  const stack = new Uint8Array(CHILD_STACK);
  // The stack grows down: start at its (16-byte aligned) top.
  // (Arithmetic, not `& ~15`: JS bitwise operators truncate to 32 bits.)
  const end = ptr(stack) + CHILD_STACK;
  const top = end - (end % 16);
  const clone = libcFunction("clone", { args: ["ptr", "ptr", "i32", "ptr"], returns: "i32" });
  const pid = clone(pause, top as Pointer, CLONE_NEWUSER | extraFlags | SIGCHLD, null) as number;
  void stack.length; // keep the stack alive across the call
  return check(pid, "clone", () => `CLONE_NEWUSER|0x${(extraFlags >>> 0).toString(16)}`);
}
