// libc through bun:ffi. Each function is bound on first use with its own dlopen, so
// a symbol missing from an old glibc breaks only the wrapper that needs it, and a
// process that never mounts never pays for binding mount(). libc.so.6 is the
// system's, so this works the same inside a `bun build --compile` binary.

import { dlopen, read, type FFIFunction, type Pointer } from "bun:ffi";
import { SysError } from "./errno.ts";

const LIBC = "libc.so.6";
const ERRNO_LOCATION = "__errno_location";
const ERRNO_DEF: FFIFunction = { args: [], returns: "ptr" };

type Bound = (...args: unknown[]) => unknown;
const cache = new Map<string, Bound>();

/**
 * The libc function `name`, bound with `def` the first time it is asked for. Bindings
 * are cached per name and signature, so two callers that declare a variadic function
 * (fcntl, ioctl, prctl) differently each get their own.
 */
export function libcFunction(name: string, def: FFIFunction): Bound {
  const key = `${name}(${(def.args ?? []).join(",")})${String(def.returns ?? "void")}`;
  let fn = cache.get(key);
  if (fn === undefined) {
    // errno must be readable without binding anything after a failed call
    // (dlopen itself makes syscalls that would overwrite errno).
    if (name !== ERRNO_LOCATION) libcFunction(ERRNO_LOCATION, ERRNO_DEF);
    const lib = dlopen(LIBC, { [name]: def });
    const sym = lib.symbols[name];
    if (sym === undefined) throw new Error(`${LIBC}: symbol ${name} not bound`);
    fn = sym as unknown as Bound;
    cache.set(key, fn);
  }
  return fn;
}

const missing = new Set<string>();

/** True when libc exports `name` (used to pick a fallback on older glibc). */
export function libcHas(name: string, def: FFIFunction): boolean {
  if (missing.has(name)) return false;
  try {
    libcFunction(name, def);
    return true;
  } catch {
    missing.add(name);
    return false;
  }
}

/**
 * The calling thread's errno. Call it right after the failing call, before anything
 * that could make another syscall. JS runs on one thread per isolate, so the value is
 * the one the previous FFI call left.
 */
export function lastErrno(): number {
  const loc = libcFunction(ERRNO_LOCATION, ERRNO_DEF)() as Pointer | null;
  if (loc === null) return 0;
  return read.i32(loc, 0);
}

/** A NUL-terminated copy of `s` for a `const char *` argument. */
export function cstr(s: string, what: string): Buffer {
  if (s.includes("\0")) throw new TypeError(`${what} contains a NUL byte: ${JSON.stringify(s)}`);
  return Buffer.from(s + "\0", "utf8");
}

/** Throws a SysError for a call that returned -1 (or a negative ssize_t). */
export function check(ret: number | bigint, syscall: string, detail: () => string): number {
  const n = Number(ret);
  if (n < 0) {
    const errno = lastErrno();
    throw new SysError(syscall, errno, detail());
  }
  return n;
}
