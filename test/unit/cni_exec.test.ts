// Running plugin binaries: small shell scripts stand in for plugins.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPlugin, PluginFailure, runPlugin } from "../../src/pod/cni/exec.ts";

let dir: string;

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

async function failure(p: Promise<unknown>): Promise<PluginFailure> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PluginFailure) return e;
    throw e;
  }
  throw new Error("expected the plugin run to fail");
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crib-cni-exec-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("CNI plugin execution", () => {
  test("stdin in, stdout out, with the given environment only", async () => {
    const p = script("echoer", `printf '{"cmd":"%s","env":"%s","in":' "$CNI_COMMAND" "$HOME"; cat; printf '}'`);
    const out = await runPlugin({ path: p, env: { CNI_COMMAND: "ADD", PATH: "/usr/bin:/bin" }, stdin: '{"a":1}', timeoutMs: 10_000 });
    expect(JSON.parse(out)).toEqual({ cmd: "ADD", env: "", in: { a: 1 } });
  });

  test("a plugin's JSON error is kept apart", async () => {
    const p = script("failer", `cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no bridge"}'; echo noise >&2; exit 1`);
    const e = await failure(runPlugin({ path: p, env: {}, stdin: "{}", timeoutMs: 10_000 }));
    expect(e.pluginError).toEqual({ code: 7, msg: "bad config", details: "no bridge" });
    expect(e.timedOut).toBe(false);
  });

  test("without a JSON error: the exit status and the end of stderr", async () => {
    const p = script("crasher", `echo "panic: runtime error" >&2; exit 2`);
    const e = await failure(runPlugin({ path: p, env: {}, stdin: "{}", timeoutMs: 10_000 }));
    expect(e.pluginError).toBeUndefined();
    expect(e.message).toBe("exited with status 2: panic: runtime error");
  });

  test("a plugin that hangs is killed at the time limit", async () => {
    const p = script("hanger", `exec sleep 30`);
    const e = await failure(runPlugin({ path: p, env: { PATH: "/usr/bin:/bin" }, stdin: "{}", timeoutMs: 300 }));
    expect(e.timedOut).toBe(true);
    expect(e.message).toContain("did not finish");
  });

  test("a child left holding stdout does not keep the run waiting", async () => {
    const pidFile = join(dir, "forker.pid");
    const p = script("forker", `cat >/dev/null; sleep 30 & echo $! > ${pidFile}; echo '{"ok":true}'`);
    try {
      expect(JSON.parse(await runPlugin({ path: p, env: { PATH: "/usr/bin:/bin" }, stdin: "{}", timeoutMs: 10_000 }))).toEqual({ ok: true });
    } finally {
      process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    }
  });

  test("a plugin that floods stdout is killed", async () => {
    const p = script("flooder", `exec cat /dev/zero`);
    const e = await failure(runPlugin({ path: p, env: { PATH: "/usr/bin:/bin" }, stdin: "{}", timeoutMs: 10_000 }));
    expect(e.message).toContain("printed more than");
  });

  test("findPlugin: the first dir with an executable of that name", async () => {
    const other = mkdtempSync(join(tmpdir(), "crib-cni-exec2-"));
    try {
      writeFileSync(join(other, "notexec"), "x", { mode: 0o644 });
      writeFileSync(join(dir, "notexec"), "#!/bin/sh\n", { mode: 0o755 });
      expect(await findPlugin("notexec", [other, dir])).toBe(join(dir, "notexec"));
      expect(await findPlugin("absent", [other, dir])).toBeUndefined();
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
