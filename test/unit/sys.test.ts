// The bun:ffi syscall wrappers, against the real kernel. Tests that change process-wide
// state (mount namespace, subreaper) run in a child Bun process so the test runner
// stays as it was. Device nodes and trusted.* xattrs need root; those skip otherwise.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SysError, errnoName } from "../../src/sys/errno.ts";
import { S_IFCHR, S_IFIFO, major, makedev, minor, mknod } from "../../src/sys/mknod.ts";
import { umount2 } from "../../src/sys/mount.ts";
import { setns } from "../../src/sys/namespace.ts";
import { lgetxattr, llistxattr, lsetxattr } from "../../src/sys/xattr.ts";
import { errnoCode } from "../../src/errors.ts";

const isRoot = process.getuid?.() === 0;
const bun = process.execPath;
const srcSys = resolve(import.meta.dir, "../../src/sys");
let dir = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crib-sys-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function thrown(fn: () => unknown): SysError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SysError) return err;
    throw err;
  }
  throw new Error("expected a SysError");
}

describe("makedev", () => {
  test("matches glibc's layout", () => {
    expect(makedev(1, 3)).toBe(0x103n);
    expect(makedev(0, 0)).toBe(0n);
    // major above 12 bits and minor above 8 bits go to the high halves.
    expect(makedev(0x12345, 0x6789a)).toBe(0x000120006783459an);
    for (const [ma, mi] of [[1, 3], [259, 0], [4095, 255], [0x12345, 0x6789a], [0xfffff, 0xfffff]] as const) {
      const d = makedev(ma, mi);
      expect(major(d)).toBe(ma);
      expect(minor(d)).toBe(mi);
    }
  });

  test("agrees with the kernel's rdev", () => {
    if (!isRoot) return;
    const p = join(dir, "dev-big");
    mknod(p, S_IFCHR | 0o600, 300, 70000);
    const st = lstatSync(p);
    expect(major(st.rdev)).toBe(300);
    expect(minor(st.rdev)).toBe(70000);
  });
});

describe("errno", () => {
  test("names common numbers and falls back to the number", () => {
    expect(errnoName(2)).toBe("ENOENT");
    expect(errnoName(61)).toBe("ENODATA");
    expect(errnoName(4242)).toBe("errno 4242");
  });
});

describe("mknod", () => {
  test("creates a fifo", () => {
    const p = join(dir, "fifo");
    mknod(p, S_IFIFO | 0o640);
    const st = lstatSync(p);
    expect(st.isFIFO()).toBe(true);
  });

  test.skipIf(!isRoot)("creates a 0/0 char device (an overlay whiteout)", () => {
    const p = join(dir, "wh");
    mknod(p, S_IFCHR, 0, 0);
    const st = lstatSync(p);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
  });

  test("fails with the errno name and the path", () => {
    const p = join(dir, "missing-dir", "x");
    const err = thrown(() => mknod(p, S_IFIFO | 0o600));
    expect(err.code).toBe("ENOENT");
    expect(errnoCode(err)).toBe("ENOENT");
    expect(err.message).toContain(p);
    expect(err.message).toContain("mknod");
  });
});

describe("xattrs", () => {
  test("set, get and list user.* on a file, binary values intact", () => {
    const p = join(dir, "file");
    writeFileSync(p, "x");
    const value = new Uint8Array([0x80, 0x00, 0xff, 0x01]);
    lsetxattr(p, "user.crib.test", value);
    lsetxattr(p, "user.crib.empty", new Uint8Array(0));
    expect(lgetxattr(p, "user.crib.test")).toEqual(value);
    expect(lgetxattr(p, "user.crib.empty")).toEqual(new Uint8Array(0));
    expect(lgetxattr(p, "user.crib.none")).toBeUndefined();
    expect(llistxattr(p).sort()).toEqual(["user.crib.empty", "user.crib.test"]);
  });

  test.skipIf(!isRoot)("acts on a symlink itself, not its target", () => {
    const target = join(dir, "target");
    const link = join(dir, "link");
    writeFileSync(target, "t");
    symlinkSync(target, link);
    lsetxattr(link, "trusted.crib.on-link", new TextEncoder().encode("y"));
    expect(new TextDecoder().decode(lgetxattr(link, "trusted.crib.on-link"))).toBe("y");
    expect(lgetxattr(target, "trusted.crib.on-link")).toBeUndefined();
    expect(llistxattr(target)).not.toContain("trusted.crib.on-link");
  });

  test("errors name the path and the attribute", () => {
    const p = join(dir, "nope");
    const err = thrown(() => lgetxattr(p, "user.x"));
    expect(err.code).toBe("ENOENT");
    expect(err.message).toContain(p);
    expect(err.message).toContain("user.x");
    expect(thrown(() => llistxattr(p)).code).toBe("ENOENT");
    expect(thrown(() => lsetxattr(p, "user.x", new Uint8Array(1))).code).toBe("ENOENT");
  });

  test("a NUL in a path is refused before the call", () => {
    expect(() => lgetxattr("/tmp/a\0b", "user.x")).toThrow(TypeError);
  });
});

describe("mount, umount2, setns", () => {
  test("umount2 of a directory that is no mount point fails with EINVAL", () => {
    const err = thrown(() => umount2(dir));
    expect(err.code).toBe("EINVAL");
    expect(err.message).toContain(dir);
  });

  test("setns on a bad fd fails with EBADF", () => {
    const err = thrown(() => setns(-1, 0));
    expect(err.code).toBe("EBADF");
    expect(err.message).toContain("fd=-1");
  });

  // In a child process: a private mount namespace, a tmpfs, a bind mount made
  // read-only, then both unmounted; and the subreaper flag.
  test.skipIf(!isRoot)("in a new mount namespace: tmpfs, bind, remount ro, detach", async () => {
    const base = mkdtempSync(join(tmpdir(), "crib-sys-mnt-"));
    try {
      const script = join(base, "child.ts");
      writeFileSync(
        script,
        `
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import * as m from ${JSON.stringify(join(srcSys, "mount.ts"))};
import * as ns from ${JSON.stringify(join(srcSys, "namespace.ts"))};
import * as pr from ${JSON.stringify(join(srcSys, "prctl.ts"))};
const base = ${JSON.stringify(base)};
const out: Record<string, unknown> = {};
ns.unshare(ns.CLONE_NEWNS);
m.mount(null, "/", null, m.MS_REC | m.MS_PRIVATE);
const t = base + "/t", b = base + "/b";
mkdirSync(t); mkdirSync(b);
m.mount("tmpfs", t, "tmpfs", m.MS_NOSUID | m.MS_NODEV, "size=1m,mode=0755");
writeFileSync(t + "/hello", "hi");
m.mount(t, b, null, m.MS_BIND);
m.mount(null, b, null, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY);
out.boundSees = existsSync(b + "/hello");
try { writeFileSync(b + "/x", "x"); out.roWrite = "ok"; } catch (e) { out.roWrite = (e as { code?: string }).code; }
try { m.mount("none", t + "/nope", "tmpfs", 0); } catch (e) { out.mountErr = (e as Error).message; }
m.umount2(b, m.MNT_DETACH);
m.umount2(t);
out.afterUmount = existsSync(t + "/hello");
out.subreaperBefore = pr.isChildSubreaper();
pr.setChildSubreaper();
out.subreaperAfter = pr.isChildSubreaper();
console.log(JSON.stringify(out));
`,
      );
      const proc = Bun.spawn([bun, script], { stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      const out = JSON.parse(stdout) as Record<string, unknown>;
      expect(out.boundSees).toBe(true);
      expect(out.roWrite).toBe("EROFS");
      expect(String(out.mountErr)).toContain("ENOENT");
      expect(String(out.mountErr)).toContain(`${base}/t/nope`);
      expect(out.afterUmount).toBe(false);
      expect(out.subreaperBefore).toBe(false);
      expect(out.subreaperAfter).toBe(true);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe("inside a compiled binary", () => {
  // `bun build --compile` takes under a second here; the binary dlopens the
  // system libc exactly as the interpreter does.
  test("the wrappers work in a bun build --compile executable", async () => {
    const base = mkdtempSync(join(tmpdir(), "crib-sys-compile-"));
    try {
      const entry = join(base, "main.ts");
      writeFileSync(
        entry,
        `
import { mknod, S_IFIFO } from ${JSON.stringify(join(srcSys, "mknod.ts"))};
import { lgetxattr } from ${JSON.stringify(join(srcSys, "xattr.ts"))};
import { umount2 } from ${JSON.stringify(join(srcSys, "mount.ts"))};
const d = process.argv[2] ?? "";
mknod(d + "/fifo", S_IFIFO | 0o600);
let code = "";
try { umount2(d); } catch (e) { code = (e as { code?: string }).code ?? ""; }
console.log(JSON.stringify({ code, none: lgetxattr(d + "/fifo", "user.none") === undefined }));
`,
      );
      const exe = join(base, "probe");
      const build = Bun.spawnSync([bun, "build", "--compile", entry, "--outfile", exe], { stdout: "pipe", stderr: "pipe" });
      expect(build.stderr.toString()).toBe("");
      expect(build.exitCode).toBe(0);
      const run = Bun.spawnSync([exe, base], { stdout: "pipe", stderr: "pipe" });
      expect(run.stderr.toString()).toBe("");
      expect(JSON.parse(run.stdout.toString())).toEqual({ code: "EINVAL", none: true });
      expect(lstatSync(join(base, "fifo")).isFIFO()).toBe(true);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
