// prctl(2) options crib needs.

import { ptr } from "bun:ffi";
import { check, libcFunction } from "./libc.ts";

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;

function prctl(option: number, arg2: number | bigint): number {
  // prctl is variadic in glibc; passing four unsigned longs after the option matches
  // the kernel ABI on x86_64 and arm64.
  const fn = libcFunction("prctl", { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" });
  return fn(option, BigInt(arg2), 0n, 0n, 0n) as number;
}

/** Make this process the reaper of its orphaned descendants (the monitor needs this). */
export function setChildSubreaper(on = true): void {
  check(prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0), "prctl", () => `PR_SET_CHILD_SUBREAPER, ${on ? 1 : 0}`);
}

/** Whether this process is a child subreaper. */
export function isChildSubreaper(): boolean {
  const out = new Int32Array(1);
  check(prctl(PR_GET_CHILD_SUBREAPER, ptr(out)), "prctl", () => "PR_GET_CHILD_SUBREAPER");
  return out[0] !== 0;
}
