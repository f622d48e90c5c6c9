// Bringing a network interface up with ioctl(SIOCSIFFLAGS): enough for the
// loopback of a new pod network namespace, without netlink or `ip`.
import { check, libcFunction } from "./libc.ts";
import { AF_INET, SOCK_CLOEXEC, SOCK_DGRAM } from "./socket_consts.ts";

const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;
const IFREQ_SIZE = 40; // char ifr_name[16] + a 24-byte union; flags are a short at 16

/** Set IFF_UP on `name` in the calling thread's network namespace. */
export function interfaceUp(name: string): void {
  if (Buffer.byteLength(name) >= 16) throw new Error(`interface name too long: ${name}`);
  const socket = libcFunction("socket", { args: ["i32", "i32", "i32"], returns: "i32" });
  const ioctl = libcFunction("ioctl", { args: ["i32", "u64", "ptr"], returns: "i32" });
  const close = libcFunction("close", { args: ["i32"], returns: "i32" });
  const fd = check(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number, "socket", () => "AF_INET, SOCK_DGRAM");
  try {
    const req = Buffer.alloc(IFREQ_SIZE);
    req.write(name, 0, "utf8");
    check(ioctl(fd, BigInt(SIOCGIFFLAGS), req) as number, "ioctl", () => `SIOCGIFFLAGS ${name}`);
    req.writeInt16LE(req.readInt16LE(16) | IFF_UP, 16);
    check(ioctl(fd, BigInt(SIOCSIFFLAGS), req) as number, "ioctl", () => `SIOCSIFFLAGS ${name} up`);
  } finally {
    close(fd);
  }
}
