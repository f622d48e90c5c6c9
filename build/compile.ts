// Builds dist/crib: one self-contained executable (Bun runtime + crib + the
// CRI proto, embedded). Usage: bun build/compile.ts [--target bun-linux-arm64]
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const top = join(import.meta.dir, "..");
const pkg = (await Bun.file(join(top, "package.json")).json()) as { version: string };

function gitCommit(): string {
  const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: top, stderr: "ignore" });
  if (r.exitCode !== 0) return "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: top }).stdout.toString().trim();
  return r.stdout.toString().trim() + (dirty ? "-dirty" : "");
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const target = option("--target");
// --outfile and --commit let tests build a second, distinguishable binary (monitor upgrade).
const outfile = option("--outfile") ?? join(top, "dist", target ? `crib-${target.replace(/^bun-/, "")}` : "crib");
mkdirSync(dirname(outfile), { recursive: true });

/** `bun build --compile` of every face into `out` (for `target`), laying bytecode out by `orders`. */
function compile(out: string, buildTarget: string | undefined, orders: string[]): void {
  const args = [
    process.execPath, "build", "--compile",
    // Bytecode: no parse at start-up (faster start, a few MB less per process).
    "--minify-syntax", "--minify-whitespace", "--bytecode",
    // Code splitting (ESM only): each dynamic import() is a chunk of its own, so code a
    // process never imports (image archives, the streaming server, ctl in the daemon...)
    // is neither loaded nor instantiated; without it a face's bundle loads whole.
    "--format", "esm", "--splitting",
    // Start with the JIT's tier-up thresholds x64: start-up code runs once and rarely pays
    // back a JIT compile. The daemon returns to the normal policy once it serves
    // (src/daemon/startup_jit.ts); short-lived faces (ctl, help) never need it.
    "--compile-jit-policy=64",
    ...(orders.length > 0 ? [`--bytecode-order=${orders.join(",")}`] : []),
    "--define", `CRIB_VERSION=${JSON.stringify(pkg.version)}`,
    "--define", `CRIB_COMMIT=${JSON.stringify(option("--commit") ?? gitCommit())}`,
    ...(buildTarget ? ["--target", buildTarget] : []),
    "--outfile", out,
    // The binary's entry (the dispatcher) first, then one entry per face, which it loads by name.
    ...["dispatch", "daemon", "monitor", "pause"].map((f) => join(top, "src/faces", `${f}.ts`)),
  ];
  const r = Bun.spawnSync(args, { cwd: top, stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) {
    console.error(`build failed (exit ${r.exitCode})`);
    process.exit(1);
  }
}

/** Run `cmd` with BUN_BYTECODE_ORDER_OUT=`order` until `ready` holds, then SIGTERM it (the profile is written on exit). */
async function recordRun(cmd: string[], order: string, ready: () => boolean | Promise<boolean>): Promise<void> {
  const proc = Bun.spawn(cmd, { env: { ...process.env, BUN_BYTECODE_ORDER_OUT: order }, stdout: "ignore", stderr: "ignore" });
  try {
    for (const t0 = performance.now(); !(await ready()); await Bun.sleep(20)) {
      if (proc.exitCode !== null || performance.now() - t0 > 20_000) throw new Error(`${cmd.slice(1).join(" ")} did not get ready`);
    }
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

/**
 * Profile-guided bytecode layout: a native build records which functions the daemon
 * runs until it answers a CRI Version, and the monitor until it serves; the real build
 * puts their bytecode first, so those processes touch fewer pages of the binary (idle
 * daemon RSS -3.8 MiB). Only the layout changes; without a profile the binary still works.
 */
async function recordStartupOrder(dir: string): Promise<string[]> {
  const bin = join(dir, "crib");
  compile(bin, undefined, []);
  const socket = join(dir, "run", "crib.sock");
  const config = join(dir, "crib.yaml");
  writeFileSync(config, `socket: ${socket}\nroot: ${join(dir, "root")}\nstate: ${join(dir, "state")}\nlog:\n  level: error\n`);
  const serveOrder = join(dir, "serve.order");
  await recordRun([bin, "serve", "--config", config], serveOrder, () =>
    existsSync(socket) && Bun.spawnSync([bin, "ctl", "-r", `unix://${socket}`, "version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0,
  );
  const monitorOrder = join(dir, "monitor.order");
  await recordRun([bin, "monitor", "--state", join(dir, "monitor")], monitorOrder, () => existsSync(join(dir, "monitor", "monitor.sock")));
  return [serveOrder, monitorOrder].filter((f) => existsSync(f));
}

const started = performance.now();
const scratch = mkdtempSync(join(tmpdir(), "crib-build-"));
try {
  let orders: string[] = [];
  try {
    orders = await recordStartupOrder(scratch);
  } catch (e) {
    console.warn(`no bytecode layout profile (${e instanceof Error ? e.message : String(e)}); building without one`);
  }
  compile(outfile, target, orders);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
const size = Bun.file(outfile).size;
console.log(`built ${outfile} (${(size / 1048576).toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms`);
