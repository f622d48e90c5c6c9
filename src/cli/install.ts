// `crib install`: put this binary and its systemd unit on a node. Copies the
// running executable to <prefix>/bin/crib and writes <unit-dir>/crib.service;
// it neither reloads systemd nor starts anything. Running it again changes only
// what differs, so it doubles as the upgrade step.
import { createHash } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import unitTemplate from "../../build/crib.service" with { type: "text" };
import { errnoCode, errorMessage, invalidArgument, permissionDenied } from "../errors.ts";
import { boolFlag, flag, UsageError } from "./args.ts";
import { parseCommand } from "./command.ts";
import { DEFAULT_PREFIX, DEFAULT_UNIT_DIR, INSTALL } from "./faces.ts";

const TEMPLATE_EXEC = "/usr/local/bin/crib";

/** The unit text for a binary installed at `binary` (an absolute path without spaces). */
export function unitFor(binary: string): string {
  if (!isAbsolute(binary) || /\s/.test(binary)) throw invalidArgument(`binary path ${JSON.stringify(binary)} must be absolute and without spaces (it goes into ExecStart=)`);
  return unitTemplate.replaceAll(TEMPLATE_EXEC, binary);
}

/** Whether this process is the compiled crib (not `bun src/faces/dispatch.ts`, whose execPath is bun itself). */
function isCompiled(): boolean {
  // Bun.main is inside the embedded file system of a compiled binary (import.meta.url is not, with --bytecode).
  return Bun.main.includes("$bunfs") || Bun.main.includes("~BUN");
}

async function sha256File(path: string): Promise<string | undefined> {
  try {
    return createHash("sha256").update(await readFile(path)).digest("hex");
  } catch {
    return undefined;
  }
}

/** Write `data` to `path` through a temp file + fsync + rename, so a reader never sees half a file. */
async function writeAtomic(path: string, data: Uint8Array, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.crib-install-${process.pid}`;
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, mode);
    // rename, not overwrite: replacing a running binary in place fails with ETXTBSY.
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export interface InstallResult {
  binary: string;
  unit: string;
  binaryChanged: boolean;
  unitChanged: boolean;
}

/** Copy `source` to <prefix>/bin/crib and write the unit; idempotent. */
export async function installCrib(source: string, prefix: string, unitDir: string): Promise<InstallResult> {
  const binary = join(prefix, "bin", "crib");
  const unit = join(unitDir, "crib.service");
  const unitText = unitFor(binary);

  let binaryChanged = false;
  if (resolve(source) !== resolve(binary)) {
    const bytes = new Uint8Array(await readFile(source));
    const want = createHash("sha256").update(bytes).digest("hex");
    if ((await sha256File(binary)) !== want) {
      await writeAtomic(binary, bytes, 0o755);
      binaryChanged = true;
    }
  }
  let unitChanged = false;
  const current = await readFile(unit, "utf8").catch(() => undefined);
  if (current !== unitText) {
    await writeAtomic(unit, new TextEncoder().encode(unitText), 0o644);
    unitChanged = true;
  }
  return { binary, unit, binaryChanged, unitChanged };
}

export async function install(argv: string[]): Promise<number> {
  const args = parseCommand(argv, INSTALL);
  if (args.positionals.length > 0) throw new UsageError(`crib install takes no arguments (got ${args.positionals.join(" ")})`);
  const prefix = flag(args, "prefix") ?? DEFAULT_PREFIX;
  const unitDir = flag(args, "unit-dir") ?? DEFAULT_UNIT_DIR;
  if (!isAbsolute(prefix)) throw new UsageError(`--prefix must be an absolute path, got ${JSON.stringify(prefix)}`);
  if (!isAbsolute(unitDir)) throw new UsageError(`--unit-dir must be an absolute path, got ${JSON.stringify(unitDir)}`);

  if (boolFlag(args, "print-unit")) {
    process.stdout.write(unitFor(join(prefix, "bin", "crib")));
    return 0;
  }
  if (!isCompiled()) throw invalidArgument(`crib install copies the compiled crib binary, but this is ${process.execPath} running the sources: build dist/crib (npm run build) and run it`);

  let r: InstallResult;
  try {
    r = await installCrib(process.execPath, prefix, unitDir);
  } catch (e) {
    const code = errnoCode(e);
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw permissionDenied(`crib install: ${errorMessage(e)} (run it as root, or give --prefix and --unit-dir you can write)`, e);
    throw e;
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(r.binaryChanged ? `installed ${r.binary}` : `${r.binary} is up to date`);
  out(r.unitChanged ? `wrote ${r.unit}` : `${r.unit} is up to date`);
  if (r.binaryChanged || r.unitChanged) {
    out("next: systemctl daemon-reload && systemctl enable --now crib");
    if (r.binaryChanged) out("      (a running crib picks up the new binary with: systemctl restart crib; containers keep running)");
  }
  return 0;
}
