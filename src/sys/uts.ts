// sethostname(2), for a pod's UTS namespace.
import { check, cstr, libcFunction } from "./libc.ts";

export function sethostname(name: string): void {
  const fn = libcFunction("sethostname", { args: ["ptr", "u64"], returns: "i32" });
  const buf = cstr(name, "hostname");
  check(fn(buf, BigInt(buf.length - 1)) as number, "sethostname", () => JSON.stringify(name));
}
