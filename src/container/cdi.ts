// CDI (Container Device Interface) devices: the CRI `CDI_devices` field and the
// `cdi.k8s.io/*` annotations (device plugins, dynamic resource allocation) name devices
// as "vendor.com/class=name"; spec files in the configured directories (default
// /etc/cdi, then /var/run/cdi) say what each means as edits of the OCI spec: device
// nodes, mounts, environment, hooks, extra groups. A device's own edits and its spec
// file's common edits both apply.
//
// Resolution follows the CDI registry's rules: a later directory overrides an earlier one
// for the same device; two files of one directory that define the same device make it
// ambiguous. An unknown or ambiguous device fails CreateContainer, naming it. Spec files
// are read on each CreateContainer that asks for a device (they are small and change
// when a driver (re)starts); each is bounded.

import { readdir, readFile, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import { parse as parseYaml } from "yaml";
import type { ContainerConfig } from "../protocol/types.ts";
import { errnoCode, errorMessage, invalidArgument } from "../errors.ts";
import { log } from "../log/logger.ts";
import { major, minor } from "../sys/mknod.ts";
import { deviceBindMounts } from "./spec/devices.ts";
import { depth } from "./spec/mounts.ts";
import type { OciDevice, OciHook, OciHooks, OciMount, OciSpec } from "./spec/oci_types.ts";

const logger = log.with({ component: "cdi" });

export const CDI_ANNOTATION_PREFIX = "cdi.k8s.io/";
/** A spec file larger than this is skipped (a real one is a few KB). */
const MAX_SPEC_BYTES = 1 << 20;

// "vendor.com/class=name": a DNS-subdomain vendor, a class, a name (CDI's name rules).
const QUALIFIED = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)\/([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?)=([a-zA-Z0-9]([a-zA-Z0-9_.:-]*[a-zA-Z0-9])?)$/;
const KIND = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$/;

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}
export interface CdiMount { hostPath: string; containerPath: string; options?: string[]; type?: string }
export interface CdiHook { hookName: string; path: string; args?: string[]; env?: string[]; timeout?: number }
export interface CdiEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
}
interface CdiSpecFile {
  cdiVersion: string;
  kind: string;
  devices: { name: string; containerEdits?: CdiEdits }[];
  containerEdits?: CdiEdits;
}

/** The device names a container asks for: the CRI field first, then the annotations; duplicates once. */
export function requestedCdiDevices(config: ContainerConfig): string[] {
  const names: string[] = config.CDI_devices.map((d) => d.name);
  for (const [key, value] of Object.entries(config.annotations)) {
    if (!key.startsWith(CDI_ANNOTATION_PREFIX)) continue;
    for (const n of value.split(",")) if (n.trim() !== "") names.push(n.trim());
  }
  for (const n of names) {
    if (!QUALIFIED.test(n)) throw invalidArgument(`CDI device ${JSON.stringify(n)} is not a fully qualified name (vendor.com/class=name)`);
  }
  return [...new Set(names)];
}

/** One device as found: where, and the edits to make (the spec file's common edits, then its own). */
interface Found { file: string; edits: CdiEdits[] }

function checkSpec(raw: unknown, file: string): CdiSpecFile {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("not a mapping");
  const s = raw as Partial<CdiSpecFile>;
  if (typeof s.cdiVersion !== "string") throw new Error("cdiVersion is missing");
  if (typeof s.kind !== "string" || !KIND.test(s.kind)) throw new Error(`kind ${JSON.stringify(s.kind)} is not vendor.com/class`);
  if (!Array.isArray(s.devices)) throw new Error("devices is not a list");
  for (const d of s.devices) {
    if (typeof d?.name !== "string" || d.name === "") throw new Error(`a device of ${file} has no name`);
  }
  return s as CdiSpecFile;
}

/** Every device of the spec dirs, by qualified name; ambiguous ones map to the files that define them. */
async function loadRegistry(dirs: readonly string[]): Promise<{ devices: Map<string, Found>; ambiguous: Map<string, string[]> }> {
  const devices = new Map<string, Found>();
  const ambiguous = new Map<string, string[]>();
  for (const dir of dirs) {
    const inDir = new Map<string, Found[]>();
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => /\.(json|ya?ml)$/.test(n)).sort();
    } catch (e) {
      if (errnoCode(e) === "ENOENT") continue;
      throw e;
    }
    for (const name of names) {
      const file = join(dir, name);
      let spec: CdiSpecFile;
      try {
        const st = await stat(file);
        if (!st.isFile() || st.size > MAX_SPEC_BYTES) throw new Error(`not a regular file of at most ${MAX_SPEC_BYTES} bytes`);
        const text = await readFile(file, "utf8");
        spec = checkSpec(name.endsWith(".json") ? JSON.parse(text) : parseYaml(text), file);
      } catch (e) {
        // A broken file must not hide the others' devices (as the CDI registry does).
        logger.warn("CDI spec file skipped", { file, error: errorMessage(e) });
        continue;
      }
      for (const d of spec.devices) {
        const qualified = `${spec.kind}=${d.name}`;
        const edits = [spec.containerEdits, d.containerEdits].filter((e): e is CdiEdits => e !== undefined);
        inDir.set(qualified, [...(inDir.get(qualified) ?? []), { file, edits }]);
      }
    }
    // This directory overrides earlier ones for every device it defines.
    for (const [qualified, found] of inDir) {
      if (found.length > 1) {
        devices.delete(qualified);
        ambiguous.set(qualified, found.map((f) => f.file));
      } else {
        ambiguous.delete(qualified);
        devices.set(qualified, found[0]!);
      }
    }
  }
  return { devices, ambiguous };
}

/** The edits for `names`, in request order; INVALID_ARGUMENT naming an unknown or ambiguous device. */
export async function resolveCdiDevices(names: readonly string[], dirs: readonly string[]): Promise<CdiEdits[]> {
  if (names.length === 0) return [];
  const { devices, ambiguous } = await loadRegistry(dirs);
  const out: CdiEdits[] = [];
  const seenFiles = new Set<string>();
  for (const n of names) {
    const clash = ambiguous.get(n);
    if (clash) throw invalidArgument(`CDI device "${n}" is ambiguous: it is defined by ${clash.join(" and ")}`);
    const found = devices.get(n);
    if (!found) throw invalidArgument(`CDI device "${n}" is not defined by any spec file in ${dirs.join(", ")}`);
    // A spec file's common edits apply once however many of its devices are asked for.
    const [common, own] = found.edits.length === 2 ? found.edits : [undefined, found.edits[0]];
    if (common && !seenFiles.has(found.file)) out.push(common);
    seenFiles.add(found.file);
    if (own) out.push(own);
  }
  return out;
}

const HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;

function absolute(p: unknown, what: string): string {
  if (typeof p !== "string" || !p.startsWith("/") || p.includes("\0")) throw invalidArgument(`CDI ${what} ${JSON.stringify(p)} is not an absolute path`);
  return posix.normalize(p);
}

async function deviceNode(n: CdiDeviceNode): Promise<{ device: OciDevice; access: string }> {
  const path = absolute(n.path, "device path");
  const hostPath = absolute(n.hostPath ?? n.path, "device hostPath");
  let type = n.type;
  let ma = n.major;
  let mi = n.minor;
  let fileMode = n.fileMode;
  if (type === undefined || ma === undefined || mi === undefined || fileMode === undefined) {
    let st;
    try {
      st = await stat(hostPath, { bigint: true });
    } catch (e) {
      throw invalidArgument(`CDI device node ${hostPath}: ${errorMessage(e)}`, e);
    }
    const hostType = st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : st.isFIFO() ? "p" : undefined;
    if (hostType === undefined) throw invalidArgument(`CDI device node ${hostPath} is not a device`);
    type ??= hostType;
    ma ??= major(st.rdev);
    mi ??= minor(st.rdev);
    fileMode ??= Number(st.mode & 0o777n);
  }
  if (type !== "c" && type !== "b" && type !== "u" && type !== "p") throw invalidArgument(`CDI device node ${path}: type ${JSON.stringify(type)} is not c, b, u or p`);
  const access = n.permissions ?? "rwm";
  if (!/^[rwm]{1,3}$/.test(access)) throw invalidArgument(`CDI device node ${path}: permissions ${JSON.stringify(access)} are not a combination of r, w, m`);
  const device: OciDevice = { type, path, major: ma, minor: mi, fileMode };
  if (n.uid !== undefined) device.uid = n.uid;
  if (n.gid !== undefined) device.gid = n.gid;
  return { device, access };
}

/** Apply CDI edits to a built OCI spec, in order (a later env entry or device path wins). */
export async function applyCdiEdits(spec: OciSpec, edits: readonly CdiEdits[]): Promise<void> {
  for (const e of edits) {
    for (const kv of e.env ?? []) {
      const key = kv.split("=")[0] ?? "";
      spec.process.env = [...spec.process.env.filter((x) => x.split("=")[0] !== key), kv];
    }
    for (const n of e.deviceNodes ?? []) {
      const { device, access } = await deviceNode(n);
      if (spec.linux.uidMappings !== undefined) {
        // A user namespace: a bind mount of the host node (see deviceBindMounts).
        const [bind] = deviceBindMounts([device], new Map([[device.path, absolute(n.hostPath ?? n.path, "device hostPath")]]));
        spec.mounts = [...spec.mounts.filter((x) => x.destination !== device.path), bind!];
      } else {
        spec.linux.devices = [...(spec.linux.devices ?? []).filter((d) => d.path !== device.path), device];
      }
      if (device.type === "c" || device.type === "b") {
        spec.linux.resources ??= {};
        spec.linux.resources.devices = [...(spec.linux.resources.devices ?? []), { allow: true, type: device.type, major: device.major, minor: device.minor, access }];
      }
    }
    for (const m of e.mounts ?? []) {
      const mount: OciMount = { destination: absolute(m.containerPath, "mount containerPath"), source: absolute(m.hostPath, "mount hostPath"), type: m.type ?? "bind", options: m.options ?? ["rbind", "rprivate"] };
      spec.mounts = [...spec.mounts.filter((x) => x.destination !== mount.destination), mount];
    }
    for (const h of e.hooks ?? []) {
      const name = HOOK_NAMES.find((n) => n === h.hookName);
      if (name === undefined) throw invalidArgument(`CDI hook ${JSON.stringify(h.hookName)} is not one of ${HOOK_NAMES.join(", ")}`);
      const hook: OciHook = { path: absolute(h.path, "hook path") };
      if (h.args) hook.args = h.args;
      if (h.env) hook.env = h.env;
      if (h.timeout !== undefined) hook.timeout = h.timeout;
      const hooks: OciHooks = (spec.hooks ??= {});
      hooks[name] = [...(hooks[name] ?? []), hook];
    }
    if (e.additionalGids && e.additionalGids.length > 0) {
      spec.process.user.additionalGids = [...new Set([...(spec.process.user.additionalGids ?? []), ...e.additionalGids])];
    }
  }
  // Mounts go parent first, as the spec builder orders them (a stable sort keeps the rest as they were).
  if (edits.some((e) => (e.mounts ?? []).length > 0)) {
    spec.mounts = [...spec.mounts].sort((a, b) => depth(a.destination) - depth(b.destination));
  }
}
