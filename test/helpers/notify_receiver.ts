// The receiving end of sd_notify for tests: a unix datagram socket bound to a
// path or an "@abstract" name, through bun:ffi (Bun has no datagram sockets),
// polled without blocking. It plays systemd's part for a Type=notify unit.
import { rmSync } from "node:fs";
import { SysError } from "../../src/sys/errno.ts";
import { check, lastErrno, libcFunction } from "../../src/sys/libc.ts";
import { unixAddress } from "../../src/sys/notify.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const EAGAIN = 11;

type Fn = (...args: unknown[]) => unknown;
const fn = (name: string, args: ("i32" | "u32" | "ptr" | "u64")[], returns: "i32" | "i64"): Fn => libcFunction(name, { args, returns });

export class NotifyReceiver {
  private readonly received: string[] = [];

  private constructor(readonly name: string, private fd: number) {}

  static bind(name: string): NotifyReceiver {
    const { addr, len } = unixAddress(name);
    const fd = check(fn("socket", ["i32", "i32", "i32"], "i32")(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number, "socket", () => "AF_UNIX, SOCK_DGRAM");
    check(fn("bind", ["i32", "ptr", "u32"], "i32")(fd, addr, len) as number, "bind", () => name);
    return new NotifyReceiver(name, fd);
  }

  /** Every datagram received so far (drains the socket first). */
  messages(): string[] {
    const buf = Buffer.alloc(4096);
    const recv = fn("recv", ["i32", "ptr", "u64", "i32"], "i64");
    for (;;) {
      const n = Number(recv(this.fd, buf, buf.length, 0) as bigint | number);
      if (n < 0) {
        const errno = lastErrno();
        if (errno === EAGAIN) break;
        throw new SysError("recv", errno, this.name);
      }
      this.received.push(buf.subarray(0, n).toString("utf8"));
    }
    return [...this.received];
  }

  /** Wait for a datagram that has the line `line` (e.g. "READY=1"), after the first `skip` messages. */
  async waitFor(line: string, opts: { skip?: number; timeoutMs?: number } = {}): Promise<{ message: string; index: number }> {
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    for (;;) {
      const all = this.messages();
      for (let i = opts.skip ?? 0; i < all.length; i++) {
        if (all[i]!.split("\n").includes(line)) return { message: all[i]!, index: i };
      }
      if (Date.now() > deadline) throw new Error(`no ${line} on ${this.name} within ${opts.timeoutMs ?? 20_000} ms; got ${JSON.stringify(all)}`);
      await Bun.sleep(20);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    fn("close", ["i32"], "i32")(this.fd);
    this.fd = -1;
    if (!this.name.startsWith("@")) rmSync(this.name, { force: true });
  }
}
