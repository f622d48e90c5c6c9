// The kernel's boot id: a new one after every reboot. Comparing it tells a
// daemon restart from a reboot without trusting the clock (edge boards
// without an RTC start in 1970).
import { readFileSync } from "node:fs";

let cached: string | undefined;

export function bootId(): string {
  cached ??= readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  return cached;
}

/** Wall-clock nanoseconds, for the CRI's timestamps. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
