import type { FlagSpec } from "./args.ts";

/** Flags of `crib serve` and `crib config`. */
export const SERVE_FLAGS: FlagSpec[] = [
  { name: "config", short: "c", help: "config file (default /etc/crib/crib.yaml; absent = embedded defaults)" },
];
