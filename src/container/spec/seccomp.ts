// Seccomp for a container: RuntimeDefault (crib's built-in profile), Unconfined, or a
// Localhost profile file. Profile files use the Docker/containerd JSON format (archMap,
// "name" or "names", includes/excludes by capability, arch and kernel); a plain OCI
// `linux.seccomp` object is a subset of it and is accepted too. Either is compiled to
// the OCI form for this machine and the container's bounding capabilities.

import { open } from "node:fs/promises";
import { constants as fsConstants } from "node:fs";
import { isAbsolute, join } from "node:path";
import { release } from "node:os";
import { errnoCode, errorMessage, invalidArgument } from "../../errors.ts";
import type { SecurityProfile } from "../../protocol/types.ts";
import { SecurityProfile_ProfileType } from "../../protocol/types.ts";
import type { OciSeccomp, OciSeccompAction, OciSeccompArg, OciSeccompOperator, OciSyscall } from "./oci_types.ts";
import { DEFAULT_SECCOMP_PROFILE } from "./seccomp_default.ts";
import type { SeccompFilter, SeccompProfileFile } from "./seccomp_profile.ts";

export interface SeccompTarget {
  /** The container's bounding capabilities ("CAP_SYS_ADMIN", ...). */
  capabilities: readonly string[];
  /** Node-style arch (process.arch); default this process's. */
  arch?: string;
  /** Kernel release ("6.1.0-18-amd64"); default this machine's. */
  kernelRelease?: string;
}

const ACTIONS: ReadonlySet<string> = new Set<OciSeccompAction>([
  "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
]);
const OPERATORS: ReadonlySet<string> = new Set<OciSeccompOperator>([
  "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
]);

/** Node's process.arch -> Go's GOARCH, the names profile "arches" filters use. */
const GOARCH: Record<string, string> = {
  x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64",
};
/** GOARCH -> the libseccomp name of the native arch (the archMap key). */
const NATIVE_SCMP_ARCH: Record<string, string> = {
  amd64: "SCMP_ARCH_X86_64", arm64: "SCMP_ARCH_AARCH64", arm: "SCMP_ARCH_ARM", "386": "SCMP_ARCH_X86",
  ppc64le: "SCMP_ARCH_PPC64LE", s390x: "SCMP_ARCH_S390X", riscv64: "SCMP_ARCH_RISCV64",
};

/** A bound on a Localhost profile's size: real ones are tens of KiB. */
const MAX_PROFILE_BYTES = 1 << 20;

function kernelAtLeast(releaseStr: string, min: string): boolean {
  const parse = (s: string) => (/^(\d+)(?:\.(\d+))?/.exec(s) ?? []).slice(1, 3).map((x) => Number(x ?? 0));
  const [a = 0, b = 0] = parse(releaseStr);
  const [c = 0, d = 0] = parse(min);
  return a !== c ? a > c : b >= d;
}

/** Docker's "includes": every listed cap held, the arch listed, the kernel at least minKernel. */
function included(filter: SeccompFilter, caps: ReadonlySet<string>, goarch: string, kernel: string): boolean {
  if ((filter.caps ?? []).some((c) => !caps.has(c))) return false;
  if ((filter.arches ?? []).length > 0 && !(filter.arches ?? []).includes(goarch)) return false;
  if (filter.minKernel && !kernelAtLeast(kernel, filter.minKernel)) return false;
  return true;
}

/** Docker's "excludes": any listed cap held, or the arch listed, or the kernel at least minKernel. */
function excluded(filter: SeccompFilter, caps: ReadonlySet<string>, goarch: string, kernel: string): boolean {
  if ((filter.caps ?? []).some((c) => caps.has(c))) return true;
  if ((filter.arches ?? []).includes(goarch)) return true;
  if (filter.minKernel && kernelAtLeast(kernel, filter.minKernel)) return true;
  return false;
}

function errnoRet(v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 4095) throw invalidArgument(`seccomp ${where}: ${JSON.stringify(v)} is not an errno`);
  return v;
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

function action(value: string, where: string): OciSeccompAction {
  if (!ACTIONS.has(value)) throw invalidArgument(`seccomp ${where}: unknown action ${JSON.stringify(value)}`);
  return value as OciSeccompAction;
}

/** Compile a profile file for this machine and the container's capabilities. */
export function compileSeccompProfile(profile: SeccompProfileFile, target: SeccompTarget, source = "profile"): OciSeccomp {
  if (typeof profile !== "object" || profile === null || typeof profile.defaultAction !== "string") {
    throw invalidArgument(`seccomp ${source}: not a profile (no defaultAction)`);
  }
  const caps = new Set(target.capabilities);
  const goarch = GOARCH[target.arch ?? process.arch] ?? target.arch ?? process.arch;
  const kernel = target.kernelRelease ?? release();

  const out: OciSeccomp = { defaultAction: action(profile.defaultAction, `${source} defaultAction`) };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = errnoRet(profile.defaultErrnoRet, `${source} defaultErrnoRet`);

  if (profile.syscalls !== undefined && profile.syscalls !== null && !Array.isArray(profile.syscalls)) {
    throw invalidArgument(`seccomp ${source}: syscalls is not a list`);
  }
  if (profile.architectures && profile.architectures.length > 0) {
    if (!isStringArray(profile.architectures)) throw invalidArgument(`seccomp ${source}: architectures is not a list of strings`);
    out.architectures = [...profile.architectures];
  } else if (Array.isArray(profile.archMap) && profile.archMap.length > 0) {
    const native = NATIVE_SCMP_ARCH[goarch];
    const entry = profile.archMap.find((e) => e?.architecture === native);
    if (entry !== undefined) {
      const subs = entry.subArchitectures ?? [];
      if (!isStringArray(subs)) throw invalidArgument(`seccomp ${source}: subArchitectures of ${entry.architecture} is not a list of strings`);
      out.architectures = [entry.architecture, ...subs];
    }
  }
  if (profile.flags && !isStringArray(profile.flags)) throw invalidArgument(`seccomp ${source}: flags is not a list of strings`);
  if (profile.flags && profile.flags.length > 0) out.flags = [...profile.flags];
  if (typeof profile.listenerPath === "string" && profile.listenerPath !== "") out.listenerPath = profile.listenerPath;
  if (typeof profile.listenerMetadata === "string" && profile.listenerMetadata !== "") out.listenerMetadata = profile.listenerMetadata;

  const syscalls: OciSyscall[] = [];
  for (const [i, rule] of (profile.syscalls ?? []).entries()) {
    const where = `${source} syscalls[${i}]`;
    if (typeof rule !== "object" || rule === null) throw invalidArgument(`seccomp ${where}: not an object`);
    if (rule.includes && !included(rule.includes, caps, goarch, kernel)) continue;
    if (rule.excludes && excluded(rule.excludes, caps, goarch, kernel)) continue;
    let names: string[] = [];
    if (rule.names !== undefined && rule.names !== null) {
      if (!isStringArray(rule.names)) throw invalidArgument(`seccomp ${where}: names is not a list of strings`);
      names = [...rule.names];
    }
    if (names.length === 0 && typeof rule.name === "string" && rule.name !== "") names = [rule.name];
    if (names.length === 0) throw invalidArgument(`seccomp ${where}: no syscall name`);
    if (typeof rule.action !== "string") throw invalidArgument(`seccomp ${where}: no action`);
    const sc: OciSyscall = { names, action: action(rule.action, where) };
    if (rule.errnoRet !== undefined) sc.errnoRet = errnoRet(rule.errnoRet, `${where} errnoRet`);
    if (rule.args !== undefined && rule.args !== null && !Array.isArray(rule.args)) throw invalidArgument(`seccomp ${where}: args is not a list`);
    if (rule.args && rule.args.length > 0) {
      sc.args = rule.args.map((a): OciSeccompArg => {
        if (typeof a !== "object" || a === null || typeof a.value !== "number" || (a.valueTwo !== undefined && typeof a.valueTwo !== "number")) {
          throw invalidArgument(`seccomp ${where}: malformed argument filter`);
        }
        if (!OPERATORS.has(a.op)) throw invalidArgument(`seccomp ${where}: unknown operator ${JSON.stringify(a.op)}`);
        if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) throw invalidArgument(`seccomp ${where}: argument index ${a.index} out of 0..5`);
        const arg: OciSeccompArg = { index: a.index, value: a.value, op: a.op as OciSeccompOperator };
        if (a.valueTwo !== undefined) arg.valueTwo = a.valueTwo;
        return arg;
      });
    }
    syscalls.push(sc);
  }
  if (syscalls.length > 0) out.syscalls = syscalls;
  return out;
}

/** crib's RuntimeDefault profile compiled for a container with these bounding caps. */
export function defaultSeccomp(target: SeccompTarget): OciSeccomp {
  return compileSeccompProfile(DEFAULT_SECCOMP_PROFILE, target, "RuntimeDefault profile");
}

/** What the CRI asked for, after folding the deprecated seccomp_profile_path string in. */
export type SeccompChoice =
  | { kind: "runtime-default" }
  | { kind: "unconfined" }
  | { kind: "localhost"; ref: string };

/**
 * The seccomp request of a container: the `seccomp` message when set, else the
 * deprecated `seccomp_profile_path` ("runtime/default", "docker/default", "unconfined",
 * "localhost/<path>"; empty = unconfined, as both containerd and CRI-O treat it).
 */
export function seccompChoice(profile: SecurityProfile | null, deprecatedPath: string): SeccompChoice {
  if (profile !== null) {
    switch (profile.profile_type) {
      case SecurityProfile_ProfileType.RuntimeDefault:
        return { kind: "runtime-default" };
      case SecurityProfile_ProfileType.Unconfined:
        return { kind: "unconfined" };
      case SecurityProfile_ProfileType.Localhost:
        if (profile.localhost_ref === "") throw invalidArgument("seccomp profile type Localhost without localhost_ref");
        return { kind: "localhost", ref: profile.localhost_ref };
      default:
        throw invalidArgument(`unknown seccomp profile type ${String(profile.profile_type)}`);
    }
  }
  const p = deprecatedPath.trim();
  if (p === "" || p === "unconfined") return { kind: "unconfined" };
  if (p === "runtime/default" || p === "docker/default") return { kind: "runtime-default" };
  if (p.startsWith("localhost/")) {
    const ref = p.slice("localhost/".length);
    if (ref === "") throw invalidArgument(`seccomp_profile_path ${JSON.stringify(p)} names no file`);
    return { kind: "localhost", ref };
  }
  throw invalidArgument(`unknown seccomp_profile_path ${JSON.stringify(p)}`);
}

/** The absolute file of a Localhost profile: absolute refs as is, others under profileRoot. */
export function localhostProfilePath(ref: string, profileRoot: string | undefined): string {
  if (isAbsolute(ref)) return ref;
  if (profileRoot === undefined || profileRoot === "") {
    throw invalidArgument(`seccomp Localhost profile ${JSON.stringify(ref)} is relative and no seccomp profile root is configured`);
  }
  const parts = ref.split("/");
  if (parts.includes("..")) throw invalidArgument(`seccomp Localhost profile ${JSON.stringify(ref)} climbs out of ${profileRoot}`);
  return join(profileRoot, ref);
}

/** Read and parse a Localhost profile file (bounded, regular files only). */
export async function loadSeccompProfileFile(path: string): Promise<SeccompProfileFile> {
  let text: string;
  try {
    const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw invalidArgument(`seccomp profile ${path} is not a regular file`);
      if (st.size > MAX_PROFILE_BYTES) throw invalidArgument(`seccomp profile ${path} is larger than ${MAX_PROFILE_BYTES} bytes`);
      const buf = Buffer.alloc(MAX_PROFILE_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_PROFILE_BYTES) throw invalidArgument(`seccomp profile ${path} is larger than ${MAX_PROFILE_BYTES} bytes`);
      text = buf.subarray(0, bytesRead).toString("utf8");
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (errnoCode(err) === "ENOENT") throw invalidArgument(`seccomp profile ${path} does not exist`, err);
    if (errnoCode(err) !== undefined) throw invalidArgument(`cannot read seccomp profile ${path}: ${errorMessage(err)}`, err);
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`seccomp profile ${path} is not valid JSON: ${errorMessage(err)}`, err);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalidArgument(`seccomp profile ${path} is not a JSON object`);
  }
  return parsed as SeccompProfileFile;
}

/** The OCI seccomp section for a choice; undefined = unconfined. */
export async function resolveSeccomp(
  choice: SeccompChoice,
  target: SeccompTarget,
  profileRoot?: string,
): Promise<OciSeccomp | undefined> {
  switch (choice.kind) {
    case "unconfined":
      return undefined;
    case "runtime-default":
      return defaultSeccomp(target);
    case "localhost": {
      const path = localhostProfilePath(choice.ref, profileRoot);
      const profile = await loadSeccompProfileFile(path);
      return compileSeccompProfile(profile, target, `profile ${path}`);
    }
  }
}
