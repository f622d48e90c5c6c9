// Pseudo-terminals: a new pair (posix_openpt), raw mode, and window sizes:
// ioctl(TIOCSWINSZ) on the master resizes the terminal (its foreground process
// group gets SIGWINCH), TIOCGWINSZ reads it.

import { check, libcFunction } from "./libc.ts";

// asm-generic ioctl numbers (x86_64 and arm64 share them).
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;

export interface WindowSize {
  cols: number;
  rows: number;
}

const clamp = (n: number): number => (Number.isFinite(n) ? Math.min(0xffff, Math.max(0, Math.trunc(n))) : 0);

function ioctl(): (fd: number, req: bigint, arg: Uint8Array) => number {
  const fn = libcFunction("ioctl", { args: ["i32", "u64", "ptr"], returns: "i32" });
  return fn as unknown as (fd: number, req: bigint, arg: Uint8Array) => number;
}

/** Set the size of the terminal behind `fd` (a pty master or slave). */
export function setWindowSize(fd: number, size: WindowSize): void {
  // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(clamp(size.rows), 0);
  ws.writeUInt16LE(clamp(size.cols), 2);
  check(ioctl()(fd, BigInt(TIOCSWINSZ), ws), "ioctl", () => `fd=${fd}, TIOCSWINSZ ${size.cols}x${size.rows}`);
}

/** The size of the terminal behind `fd`; throws ENOTTY for a non-terminal. */
export function getWindowSize(fd: number): WindowSize {
  const ws = Buffer.alloc(8);
  check(ioctl()(fd, BigInt(TIOCGWINSZ), ws), "ioctl", () => `fd=${fd}, TIOCGWINSZ`);
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2) };
}

const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const TCSANOW = 0;
/** sizeof(struct termios) on Linux is 60; a little room to spare. */
const TERMIOS_BYTES = 64;

export interface Pty {
  master: number;
  slave: number;
  /** The slave's path, e.g. /dev/pts/3. */
  name: string;
}

/**
 * A new pseudo-terminal pair (both ends close-on-exec, neither our controlling
 * terminal). The caller closes both fds.
 */
export function openPty(): Pty {
  const posixOpenpt = libcFunction("posix_openpt", { args: ["i32"], returns: "i32" });
  const master = check(posixOpenpt(O_RDWR | O_NOCTTY | O_CLOEXEC) as number, "posix_openpt", () => "O_RDWR|O_NOCTTY");
  const close = libcFunction("close", { args: ["i32"], returns: "i32" });
  try {
    check(libcFunction("grantpt", { args: ["i32"], returns: "i32" })(master) as number, "grantpt", () => `fd=${master}`);
    check(libcFunction("unlockpt", { args: ["i32"], returns: "i32" })(master) as number, "unlockpt", () => `fd=${master}`);
    const buf = Buffer.alloc(128);
    const rc = libcFunction("ptsname_r", { args: ["i32", "ptr", "u64"], returns: "i32" })(master, buf, BigInt(buf.length)) as number;
    if (rc !== 0) throw new Error(`ptsname_r(fd=${master}) failed with ${rc}`);
    const name = buf.subarray(0, buf.indexOf(0)).toString("utf8");
    const open = libcFunction("open", { args: ["ptr", "i32"], returns: "i32" });
    const slave = check(open(Buffer.from(`${name}\0`), O_RDWR | O_NOCTTY | O_CLOEXEC) as number, "open", () => name);
    return { master, slave, name };
  } catch (err) {
    close(master);
    throw err;
  }
}

/** Raw mode (cfmakeraw): no echo, no line editing, no output translation. */
export function makeRaw(fd: number): void {
  const t = Buffer.alloc(TERMIOS_BYTES);
  check(libcFunction("tcgetattr", { args: ["i32", "ptr"], returns: "i32" })(fd, t) as number, "tcgetattr", () => `fd=${fd}`);
  libcFunction("cfmakeraw", { args: ["ptr"], returns: "void" })(t);
  check(libcFunction("tcsetattr", { args: ["i32", "i32", "ptr"], returns: "i32" })(fd, TCSANOW, t) as number, "tcsetattr", () => `fd=${fd}`);
}
