// sd_notify(3) without libsystemd: one datagram to the unix socket systemd names
// in $NOTIFY_SOCKET (Type=notify units). Bun and node have no unix datagram
// sockets, so socket(AF_UNIX, SOCK_DGRAM) and sendto go through bun:ffi. A name
// starting with "@" is an abstract socket (its first byte becomes NUL).
//
// The variable is taken out of process.env when read, as sd_notify's
// unset_environment does: runc create/start, given NOTIFY_SOCKET, would wait for
// the container to say READY. Note that Bun.spawn without `env` passes the
// environment the process started with, whatever process.env says now: spawns
// that must not pass it on give `env` (the monitor's does, and strips it too).

import { SysError } from "./errno.ts";
import { check, lastErrno, libcFunction } from "./libc.ts";
import { AF_UNIX, EINTR, SOCK_CLOEXEC, SOCK_DGRAM } from "./socket_consts.ts";

const MSG_NOSIGNAL = 0x4000;
const SUN_PATH_MAX = 108;

type Fn = (...args: unknown[]) => unknown;
const fn = (name: string, args: ("i32" | "u32" | "ptr" | "u64")[], returns: "i32" | "i64"): Fn => libcFunction(name, { args, returns });

/** struct sockaddr_un for a path or an "@abstract" name, and its length. */
export function unixAddress(name: string): { addr: Buffer; len: number } {
  const abstract = name.startsWith("@");
  if (!abstract && !name.startsWith("/")) throw new SysError("sendto", 22, `NOTIFY_SOCKET ${JSON.stringify(name)} is neither an absolute path nor an @abstract name`);
  const bytes = Buffer.from(abstract ? name.slice(1) : name, "utf8");
  // A path needs its NUL terminator; an abstract name is its bytes after the leading NUL.
  const pathLen = abstract ? 1 + bytes.length : bytes.length + 1;
  if (pathLen > SUN_PATH_MAX) throw new SysError("sendto", 36, `NOTIFY_SOCKET ${JSON.stringify(name)} is longer than ${SUN_PATH_MAX - 1} bytes`);
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, abstract ? 3 : 2);
  return { addr, len: 2 + pathLen };
}

/** Send one datagram with `message` to the unix datagram socket `name` (path or @abstract). */
export function sendDatagram(name: string, message: string): void {
  const { addr, len } = unixAddress(name);
  const fd = check(fn("socket", ["i32", "i32", "i32"], "i32")(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number, "socket", () => "AF_UNIX, SOCK_DGRAM");
  try {
    const data = Buffer.from(message, "utf8");
    const sendto = fn("sendto", ["i32", "ptr", "u64", "i32", "ptr", "u32"], "i64");
    for (;;) {
      const n = Number(sendto(fd, data, data.length, MSG_NOSIGNAL, addr, len) as bigint | number);
      if (n >= 0) return;
      const errno = lastErrno();
      if (errno !== EINTR) throw new SysError("sendto", errno, JSON.stringify(name));
    }
  } finally {
    fn("close", ["i32"], "i32")(fd);
  }
}

/** Monotonic clock in microseconds (what MONOTONIC_USEC= expects: CLOCK_MONOTONIC). */
function monotonicUsec(): bigint {
  const ts = new BigInt64Array(2);
  const CLOCK_MONOTONIC = 1;
  check(fn("clock_gettime", ["i32", "ptr"], "i32")(CLOCK_MONOTONIC, ts) as number, "clock_gettime", () => "CLOCK_MONOTONIC");
  return ts[0]! * 1_000_000n + ts[1]! / 1000n;
}

/**
 * The daemon's line to systemd. Every method is a no-op when the daemon was not
 * started by a Type=notify unit (no NOTIFY_SOCKET). Send failures are returned,
 * not thrown: systemd going away must not take the daemon with it.
 */
export class SystemdNotifier {
  private constructor(readonly socket: string | undefined) {}

  /** Read (and remove) NOTIFY_SOCKET from the environment. */
  static fromEnv(env: Record<string, string | undefined> = process.env): SystemdNotifier {
    const socket = env.NOTIFY_SOCKET;
    delete env.NOTIFY_SOCKET;
    return new SystemdNotifier(socket !== undefined && socket !== "" ? socket : undefined);
  }

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** Send raw "KEY=value" lines; returns the error, if sending failed. */
  notify(lines: string[]): Error | undefined {
    if (this.socket === undefined) return undefined;
    try {
      sendDatagram(this.socket, `${lines.join("\n")}\n`);
      return undefined;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  ready(status?: string): Error | undefined {
    return this.notify(["READY=1", `MAINPID=${process.pid}`, ...(status ? [`STATUS=${status}`] : [])]);
  }

  /** Before a reload; MONOTONIC_USEC lets Type=notify-reload units match it to the signal. */
  reloading(): Error | undefined {
    return this.notify(["RELOADING=1", `MONOTONIC_USEC=${monotonicUsec()}`]);
  }

  stopping(): Error | undefined {
    return this.notify(["STOPPING=1"]);
  }

  status(text: string): Error | undefined {
    return this.notify([`STATUS=${text}`]);
  }
}
