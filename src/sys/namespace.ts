// unshare(2) and setns(2).
//
// Both act on the calling thread only. Bun runs JS on one thread but keeps helper
// threads, so a namespace joined here is the JS thread's (and that of processes it
// spawns afterwards), not every thread's. CLONE_NEWUSER needs a single-threaded
// process and fails with EINVAL here.

import { check, libcFunction } from "./libc.ts";

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

/** unshare(2) with CLONE_NEW* flags or'ed together. */
export function unshare(flags: number): void {
  const fn = libcFunction("unshare", { args: ["i32"], returns: "i32" });
  const ret = fn(flags | 0) as number;
  check(ret, "unshare", () => `flags=0x${(flags >>> 0).toString(16)}`);
}

/** setns(2): join the namespace behind `fd` (0 for nstype = any kind). */
export function setns(fd: number, nstype = 0): void {
  const fn = libcFunction("setns", { args: ["i32", "i32"], returns: "i32" });
  const ret = fn(fd, nstype | 0) as number;
  check(ret, "setns", () => `fd=${fd}, nstype=0x${(nstype >>> 0).toString(16)}`);
}
