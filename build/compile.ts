// Builds dist/crib: one self-contained executable (Bun runtime + crib + the
// CRI proto, embedded). Usage: bun build/compile.ts [--target bun-linux-arm64]
import { mkdirSync } from "node:fs";
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
  "--define", `CRIB_VERSION=${JSON.stringify(pkg.version)}`,
  "--define", `CRIB_COMMIT=${JSON.stringify(option("--commit") ?? gitCommit())}`,
  ...(target ? ["--target", target] : []),
  "--outfile", outfile,
  // The binary's entry (the dispatcher) first, then one entry per face, which it loads by name.
  ...["dispatch", "daemon", "monitor", "pause"].map((f) => join(top, "src/faces", `${f}.ts`)),
];
const started = performance.now();
const r = Bun.spawnSync(args, { cwd: top, stdout: "inherit", stderr: "inherit" });
if (r.exitCode !== 0) {
  console.error(`build failed (exit ${r.exitCode})`);
  process.exit(1);
}
const size = Bun.file(outfile).size;
console.log(`built ${outfile} (${(size / 1048576).toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms`);
