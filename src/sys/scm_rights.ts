// Receiving a file descriptor over a unix socket (SCM_RIGHTS), for runc's
// --console-socket: runc connects to the socket and sends the pty master of the
// container's (or exec'd process's) terminal, with the pty's path as the payload.
// Bun cannot receive fds natively, so socket/bind/listen/accept4/recvmsg go through
// bun:ffi. Everything is non-blocking: callers poll tryReceive() from the event loop.

import { chmodSync, rmSync } from "node:fs";
import { ptr } from "bun:ffi";
import { SysError } from "./errno.ts";
import { check, lastErrno, libcFunction } from "./libc.ts";
import { AF_UNIX, EAGAIN, EINTR, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET } from "./socket_consts.ts";

const SUN_PATH_MAX = 108;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_CMSG_CLOEXEC = 0x40000000;

type Fn = (...args: unknown[]) => unknown;
const fn = (name: string, args: ("i32" | "u32" | "ptr" | "u64")[], returns: "i32" | "i64"): Fn => libcFunction(name, { args, returns });

function closeFd(fd: number): void {
  if (fd >= 0) fn("close", ["i32"], "i32")(fd);
}

/** What runc sent: the fd, and the payload (the pty's path, e.g. "/dev/pts/3"). */
export interface ReceivedFd {
  fd: number;
  name: string;
}

/**
 * A listening unix socket that receives one fd. `tryReceive()` returns undefined until
 * a peer has connected and its message with the fd is there.
 */
export class ConsoleSocket {
  private conn = -1;
  private closed = false;

  private constructor(
    readonly path: string,
    private listenFd: number,
  ) {}

  /** Listen on `path` (which must not exist), mode 0600. */
  static listen(path: string): ConsoleSocket {
    const bytes = Buffer.from(path, "utf8");
    if (bytes.length >= SUN_PATH_MAX) throw new SysError("bind", 36, `${JSON.stringify(path)} is longer than ${SUN_PATH_MAX - 1} bytes`);
    const fd = check(fn("socket", ["i32", "i32", "i32"], "i32")(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number, "socket", () => "AF_UNIX, SOCK_STREAM");
    const addr = Buffer.alloc(2 + SUN_PATH_MAX);
    addr.writeUInt16LE(AF_UNIX, 0);
    bytes.copy(addr, 2);
    try {
      check(fn("bind", ["i32", "ptr", "u32"], "i32")(fd, addr, 2 + bytes.length + 1) as number, "bind", () => JSON.stringify(path));
      chmodSync(path, 0o600);
      check(fn("listen", ["i32", "i32"], "i32")(fd, 4) as number, "listen", () => JSON.stringify(path));
    } catch (err) {
      closeFd(fd);
      rmSync(path, { force: true });
      throw err;
    }
    return new ConsoleSocket(path, fd);
  }

  /** The received fd (close-on-exec), or undefined when nothing has arrived yet. */
  tryReceive(): ReceivedFd | undefined {
    if (this.closed) throw new Error(`console socket ${this.path} is closed`);
    if (this.conn < 0) {
      const accept4 = fn("accept4", ["i32", "ptr", "ptr", "i32"], "i32");
      const c = accept4(this.listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC) as number;
      if (c < 0) {
        const errno = lastErrno();
        if (errno === EAGAIN || errno === EINTR) return undefined;
        throw new SysError("accept4", errno, JSON.stringify(this.path));
      }
      this.conn = c;
    }
    return receiveFd(this.conn, this.path);
  }

  /**
   * Poll until the fd arrives. `giveUp()` is asked between polls (e.g. "runc exited");
   * once it says true, one last try decides.
   */
  async receive(opts: { timeoutMs: number; giveUp?: () => boolean; intervalMs?: number }): Promise<ReceivedFd> {
    const deadline = performance.now() + opts.timeoutMs;
    for (;;) {
      const r = this.tryReceive();
      if (r !== undefined) return r;
      if (opts.giveUp?.() === true) {
        const last = this.tryReceive();
        if (last !== undefined) return last;
        throw new Error(`nothing was sent on the console socket ${this.path}`);
      }
      if (performance.now() > deadline) throw new Error(`no terminal arrived on the console socket ${this.path} within ${opts.timeoutMs} ms`);
      await Bun.sleep(opts.intervalMs ?? 5);
    }
  }

  /** Close the sockets and remove the path. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.conn);
    closeFd(this.listenFd);
    this.conn = -1;
    this.listenFd = -1;
    rmSync(this.path, { force: true });
  }
}

/**
 * One recvmsg on a connected socket: the first SCM_RIGHTS fd (extra fds are closed),
 * undefined on EAGAIN. Throws when the peer closed without sending an fd.
 */
export function receiveFd(sock: number, what: string): ReceivedFd | undefined {
  const data = Buffer.alloc(4096);
  const iov = Buffer.alloc(16); // struct iovec { void *base; size_t len; }
  iov.writeBigUInt64LE(BigInt(ptr(data)), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const control = Buffer.alloc(64); // room for a few fds (CMSG_SPACE(4) is 24)
  // struct msghdr (64-bit): name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(BigInt(ptr(iov)), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(BigInt(ptr(control)), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  const recvmsg = fn("recvmsg", ["i32", "ptr", "i32"], "i64");
  const n = Number(recvmsg(sock, msg, MSG_CMSG_CLOEXEC) as bigint | number);
  if (n < 0) {
    const errno = lastErrno();
    if (errno === EAGAIN || errno === EINTR) return undefined;
    throw new SysError("recvmsg", errno, what);
  }
  const fds: number[] = [];
  const controlLen = Number(msg.readBigUInt64LE(40));
  let off = 0;
  while (off + 16 <= controlLen) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < 16 || off + len > controlLen) break;
    const level = control.readInt32LE(off + 8);
    const type = control.readInt32LE(off + 12);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = off + 16; p + 4 <= off + len; p += 4) fds.push(control.readInt32LE(p));
    }
    off += (len + 7) & ~7;
  }
  const truncated = (msg.readInt32LE(48) & MSG_CTRUNC) !== 0;
  const [first, ...extra] = fds;
  for (const fd of extra) closeFd(fd);
  if (first === undefined) {
    if (n === 0) throw new Error(`the peer on ${what} closed without sending a file descriptor`);
    throw new Error(`the message on ${what} carried no file descriptor${truncated ? " (control data truncated)" : ""}`);
  }
  return { fd: first, name: data.subarray(0, n).toString("utf8").replace(/\0+$/, "") };
}
