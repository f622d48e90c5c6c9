// errno numbers (Linux, x86_64 and arm64 share them) to names, and the error the
// sys/ wrappers throw. It carries `code` like Node's fs errors, so errnoCode() from
// src/errors.ts works on both.

const NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
  8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
  14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
  20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
  26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
  32: "EPIPE", 34: "ERANGE", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY",
  40: "ELOOP", 61: "ENODATA", 75: "EOVERFLOW", 95: "EOPNOTSUPP", 110: "ETIMEDOUT",
  116: "ESTALE", 122: "EDQUOT",
};

/** "ENOENT" for 2; "errno 123" for a number not in the table. */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `errno ${errno}`;
}

export class SysError extends Error {
  /** "EPERM", "ENOENT", ... (or "errno N" for a rare one). */
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;

  constructor(syscall: string, errno: number, detail: string) {
    const code = errnoName(errno);
    super(`${syscall}(${detail}): ${code}`);
    this.name = "SysError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}
