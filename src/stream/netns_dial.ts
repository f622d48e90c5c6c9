// TCP connections to localhost inside a pod's network namespace, for port-forward.
//
// A socket belongs to the network namespace it was created in, whichever thread later
// uses it. So the JS thread joins the pod's netns only for the socket() call (a few
// microseconds, synchronous: no other JS runs meanwhile), returns to its own, then
// connects without blocking and hands the connected fd to node:net. No helper process
// per connection (one would cost ~20 MB and tens of ms), no thread left in a pod's
// namespace.

import { closeSync, constants, openSync } from "node:fs";
import net from "node:net";
import { SysError } from "../sys/errno.ts";
import { check, lastErrno, libcFunction } from "../sys/libc.ts";
import { CLONE_NEWNET, setns } from "../sys/namespace.ts";
import { AF_INET, AF_INET6, EINPROGRESS, EINTR, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET } from "../sys/socket_consts.ts";

const SO_ERROR = 4;
const POLLOUT = 0x4;

/** How long a connect to the pod's localhost may take (a DROP rule makes it hang). */
const CONNECT_TIMEOUT_MS = 10_000;

type Fn = (...args: unknown[]) => unknown;
const sys = (name: string, args: ("i32" | "u32" | "ptr")[]): Fn => libcFunction(name, { args, returns: "i32" });

/** socket() in the network namespace at `netnsPath` (the calling thread returns to its own). */
function socketIn(netnsPath: string, family: number): number {
  const own = openSync("/proc/thread-self/ns/net", constants.O_RDONLY);
  let target = -1;
  try {
    target = openSync(netnsPath, constants.O_RDONLY);
    setns(target, CLONE_NEWNET);
    try {
      return check(sys("socket", ["i32", "i32", "i32"])(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number, "socket", () => `in ${netnsPath}`);
    } finally {
      setns(own, CLONE_NEWNET);
    }
  } finally {
    if (target >= 0) closeSync(target);
    closeSync(own);
  }
}

function loopback(family: number, port: number): Buffer {
  if (family === AF_INET) {
    const a = Buffer.alloc(16); // sockaddr_in
    a.writeUInt16LE(AF_INET, 0);
    a.writeUInt16BE(port, 2);
    a.set([127, 0, 0, 1], 4);
    return a;
  }
  const a = Buffer.alloc(28); // sockaddr_in6, ::1
  a.writeUInt16LE(AF_INET6, 0);
  a.writeUInt16BE(port, 2);
  a[23] = 1;
  return a;
}

/** Non-blocking connect; resolves once connected, throws SysError (ECONNREFUSED...). */
async function connectFd(fd: number, family: number, port: number): Promise<void> {
  const addr = loopback(family, port);
  const ret = sys("connect", ["i32", "ptr", "u32"])(fd, addr, addr.length) as number;
  if (ret === 0) return;
  const errno = lastErrno();
  if (errno !== EINPROGRESS && errno !== EINTR) throw new SysError("connect", errno, `localhost:${port}`);
  const pfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  const deadline = performance.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    pfd.writeInt32LE(fd, 0);
    pfd.writeInt16LE(POLLOUT, 4);
    pfd.writeInt16LE(0, 6);
    const n = sys("poll", ["ptr", "u32", "i32"])(pfd, 1, 0) as number;
    if (n > 0) break;
    if (performance.now() > deadline) throw new SysError("connect", 110, `localhost:${port} (no answer within ${CONNECT_TIMEOUT_MS} ms)`);
    await Bun.sleep(5);
  }
  const err = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  check(sys("getsockopt", ["i32", "i32", "i32", "ptr", "ptr"])(fd, SOL_SOCKET, SO_ERROR, err, len) as number, "getsockopt", () => "SO_ERROR");
  const soError = err.readInt32LE(0);
  if (soError !== 0) throw new SysError("connect", soError, `localhost:${port}`);
}

function closeRaw(fd: number): void {
  sys("close", ["i32"])(fd);
}

async function dialFamily(netnsPath: string, family: number, port: number): Promise<net.Socket> {
  const fd = socketIn(netnsPath, family);
  try {
    await connectFd(fd, family, port);
  } catch (err) {
    closeRaw(fd);
    throw err;
  }
  // node:net takes over the connected fd (and closes it with the socket).
  return new net.Socket().connect({ fd } as unknown as net.NetConnectOpts);
}

/**
 * Connect to localhost:`port` in the network namespace at `netnsPath` (127.0.0.1, then
 * ::1 if nothing listens there), or in the daemon's own for a host-network pod.
 */
export async function dialPodPort(netnsPath: string | undefined, port: number): Promise<net.Socket> {
  if (netnsPath === undefined) return dialHost(port);
  try {
    return await dialFamily(netnsPath, AF_INET, port);
  } catch (err) {
    if (!(err instanceof SysError) || (err.code !== "ECONNREFUSED" && err.code !== "errno 111")) throw err;
    try {
      return await dialFamily(netnsPath, AF_INET6, port);
    } catch {
      throw err;
    }
  }
}

function dialHost(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}
