// Process and file-descriptor syscalls the monitor needs: waitid on one pid, setsid,
// execve, fcntl flags, flock, mkfifo, a unix listening socket whose fd we own (so it can
// survive an execve), and CLOCK_REALTIME with nanoseconds.

import { ptr } from "bun:ffi";
import { SysError } from "./errno.ts";
import { check, cstr, lastErrno, libcFunction } from "./libc.ts";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM } from "./socket_consts.ts";

// waitid(2) idtype and options.
const P_PID = 1;
export const WNOHANG = 0x1;
export const WEXITED = 0x4;
export const WNOWAIT = 0x01000000;

// siginfo si_code values for SIGCHLD.
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;

export interface ChildStatus {
  pid: number;
  /** CLD_EXITED, CLD_KILLED or CLD_DUMPED. */
  code: number;
  /** The exit status (CLD_EXITED) or the signal number. */
  status: number;
}

// One siginfo buffer reused by every call (JS is single-threaded). siginfo_t is 128 bytes.
const siginfo = new Int32Array(32);

/**
 * waitid(P_PID, pid, WEXITED | options). Returns null when the child has not exited
 * (WNOHANG) and throws SysError (ECHILD when pid is not our child).
 */
export function waitPid(pid: number, options = WNOHANG): ChildStatus | null {
  siginfo.fill(0);
  const fn = libcFunction("waitid", { args: ["i32", "i32", "ptr", "i32"], returns: "i32" });
  const ret = fn(P_PID, pid, ptr(siginfo), WEXITED | options) as number;
  check(ret, "waitid", () => `P_PID, ${pid}`);
  const gotPid = siginfo[4] ?? 0;
  if (gotPid === 0) return null;
  return { pid: gotPid, code: siginfo[2] ?? 0, status: siginfo[6] ?? 0 };
}

/**
 * waitid(P_ALL, WEXITED | WNOHANG): reap any exited child. Only for a process
 * that spawns no children through Bun (the pod infra process), since Bun
 * reaps its own.
 */
export function waitAny(): ChildStatus | null {
  siginfo.fill(0);
  const fn = libcFunction("waitid", { args: ["i32", "i32", "ptr", "i32"], returns: "i32" });
  const ret = fn(0 /* P_ALL */, 0, ptr(siginfo), WEXITED | WNOHANG) as number;
  if (ret < 0) return null; // ECHILD: no children
  const gotPid = siginfo[4] ?? 0;
  return gotPid === 0 ? null : { pid: gotPid, code: siginfo[2] ?? 0, status: siginfo[6] ?? 0 };
}

/** setsid(2): a new session with this process as leader. EPERM when it already leads a group. */
export function setsid(): number {
  const fn = libcFunction("setsid", { args: [], returns: "i32" });
  return check(fn() as number, "setsid", () => "");
}

/**
 * execve(2): replace this process image. Returns only by throwing. Safe from Bun: the
 * kernel ends the other threads; fds without FD_CLOEXEC, the pid, children, the
 * child-subreaper flag and ignored signals are kept.
 */
export function execve(path: string, argv: string[], env: string[]): never {
  const keep: Buffer[] = [];
  const table = (items: string[], what: string): BigUint64Array => {
    const arr = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = cstr(s, what);
      keep.push(b);
      arr[i] = BigInt(ptr(b));
    });
    return arr;
  };
  const argvTable = table(argv, "argv");
  const envTable = table(env, "env");
  const file = cstr(path, "path");
  const fn = libcFunction("execve", { args: ["ptr", "ptr", "ptr"], returns: "i32" });
  fn(file, ptr(argvTable), ptr(envTable));
  const errno = lastErrno();
  void keep.length;
  throw new SysError("execve", errno, JSON.stringify(path));
}

// fcntl(2) commands.
const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const F_SETPIPE_SZ = 1031;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;

function fcntl(fd: number, cmd: number, arg: number): number {
  // fcntl is variadic; an int third argument is passed like a fixed one on x86_64/arm64.
  const fn = libcFunction("fcntl", { args: ["i32", "i32", "i64"], returns: "i32" });
  return check(fn(fd, cmd, BigInt(arg)) as number, "fcntl", () => `fd=${fd}, cmd=${cmd}, arg=${arg}`);
}

/** Set or clear FD_CLOEXEC (cleared: the fd survives execve). */
export function setCloexec(fd: number, on: boolean): void {
  const flags = fcntl(fd, F_GETFD, 0);
  fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

/** Set or clear O_NONBLOCK on the open file description (shared by every dup of it). */
export function setNonblock(fd: number, on: boolean): void {
  const flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

/** F_SETPIPE_SZ: returns the size the kernel granted. */
export function setPipeSize(fd: number, bytes: number): number {
  return fcntl(fd, F_SETPIPE_SZ, bytes);
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

/** flock(fd, LOCK_EX|LOCK_NB): false when another open file holds the lock. */
export function tryLockExclusive(fd: number): boolean {
  const fn = libcFunction("flock", { args: ["i32", "i32"], returns: "i32" });
  const ret = fn(fd, LOCK_EX | LOCK_NB) as number;
  if (ret === 0) return true;
  const errno = lastErrno();
  if (errno === EWOULDBLOCK) return false;
  throw new SysError("flock", errno, `fd=${fd}, LOCK_EX|LOCK_NB`);
}

/** mkfifo(3); the umask applies. */
export function mkfifo(path: string, mode: number): void {
  const fn = libcFunction("mkfifo", { args: ["ptr", "u32"], returns: "i32" });
  check(fn(cstr(path, "fifo path"), mode >>> 0) as number, "mkfifo", () => `${JSON.stringify(path)}, 0o${mode.toString(8)}`);
}

const SUN_PATH_MAX = 108;

/**
 * A listening AF_UNIX stream socket bound to `path` (which must not exist), with
 * FD_CLOEXEC set. Owning the fd lets it be handed to node:net (`listen({ fd })`) and be
 * kept across execve.
 */
export function listenUnix(path: string, backlog = 128): number {
  const bytes = Buffer.from(path, "utf8");
  if (bytes.length >= SUN_PATH_MAX) throw new SysError("bind", 36, `${JSON.stringify(path)} is longer than ${SUN_PATH_MAX - 1} bytes`);
  const socket = libcFunction("socket", { args: ["i32", "i32", "i32"], returns: "i32" });
  const fd = check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number, "socket", () => "AF_UNIX, SOCK_STREAM");
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 2);
  const bind = libcFunction("bind", { args: ["i32", "ptr", "u32"], returns: "i32" });
  const listen = libcFunction("listen", { args: ["i32", "i32"], returns: "i32" });
  const close = libcFunction("close", { args: ["i32"], returns: "i32" });
  try {
    check(bind(fd, addr, 2 + bytes.length + 1) as number, "bind", () => JSON.stringify(path));
    check(listen(fd, backlog) as number, "listen", () => JSON.stringify(path));
  } catch (err) {
    close(fd);
    throw err;
  }
  return fd;
}

const CLOCK_REALTIME = 0;
const timespec = new BigInt64Array(2);

/** The wall clock in nanoseconds since the epoch (follows clock jumps, unlike hrtime). */
export function realtimeNs(): bigint {
  const fn = libcFunction("clock_gettime", { args: ["i32", "ptr"], returns: "i32" });
  check(fn(CLOCK_REALTIME, ptr(timespec)) as number, "clock_gettime", () => "CLOCK_REALTIME");
  return (timespec[0] ?? 0n) * 1_000_000_000n + (timespec[1] ?? 0n);
}
