// The kernel's boot id: a new one after every reboot. Comparing it tells a
// daemon restart from a reboot without trusting the clock (edge boards
// without an RTC start in 1970).
import { readFileSync } from "node:fs";

let cached: string | undefined;

/**
 * For tests only: CRIB_BOOT_ID_PATH names a file read instead of the kernel's
 * boot id, so a test can make the daemon believe the node rebooted.
 */
const BOOT_ID_PATH = process.env.CRIB_BOOT_ID_PATH || "/proc/sys/kernel/random/boot_id";

export function bootId(): string {
  cached ??= readFileSync(BOOT_ID_PATH, "utf8").trim();
  return cached;
}

/** Wall-clock nanoseconds, for the CRI's timestamps. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
