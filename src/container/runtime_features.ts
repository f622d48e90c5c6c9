// What each OCI runtime handler can really do on this node, from two sources: the
// runtime's own `<runtime> features` (OCI runtime-spec features.md: the mount options it
// knows, whether it makes id-mapped mounts) and the kernel. RuntimeStatus advertises a
// feature per handler only when both say yes, because a kubelet turns features on from
// it; `crib ctl info` shows the reasons for the others.
//
// `features` runs once per binary (cached by resolved path and mtime, so a runtime
// upgraded in place is asked again).

import { stat } from "node:fs/promises";
import { release } from "node:os";
import { findExecutable } from "../util/executable.ts";
import { errorMessage } from "../errors.ts";

export interface Support {
  supported: boolean;
  /** Why not (empty when supported). */
  reason: string;
}

export interface HandlerFeatures {
  /** The resolved binary, or "" when it was not found. */
  path: string;
  /** Mount option "rro": recursive read-only bind mounts (KEP-3857). */
  recursiveReadOnlyMounts: Support;
  /** Pod user namespaces (hostUsers: false, KEP-127) with id-mapped rootfs and volumes. */
  userNamespaces: Support;
}

/** The parts of `<runtime> features` JSON crib reads. */
interface OciFeatures {
  mountOptions?: string[];
  linux?: {
    namespaces?: string[];
    mountExtensions?: { idmap?: { enabled?: boolean } };
  };
}

/** A kernel release string ("6.1.0-18-amd64") as [major, minor]. */
export function kernelVersion(rel: string = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

const atLeast = (have: [number, number], want: [number, number]) => have[0] > want[0] || (have[0] === want[0] && have[1] >= want[1]);

/** mount_setattr(2), which recursive mount attributes and id-mapped mounts need. */
export const KERNEL_MOUNT_SETATTR: [number, number] = [5, 12];
/** overlayfs on id-mapped lower layers. */
export const KERNEL_IDMAP_OVERLAY: [number, number] = [5, 19];

const yes: Support = { supported: true, reason: "" };
const no = (reason: string): Support => ({ supported: false, reason });

/**
 * Decide from a runtime's features and the kernel release; pure, for tests.
 * `cribIdmap` says whether crib itself can make the id-mapped mounts (for runtimes that
 * cannot) and, when not, why.
 */
export function decideFeatures(
  name: string,
  features: OciFeatures | Error,
  kernel: [number, number],
  cribIdmap: Support,
): Omit<HandlerFeatures, "path"> {
  const kernelText = `${kernel[0]}.${kernel[1]}`;
  if (features instanceof Error) {
    const why = `runtime ${name}: ${features.message}`;
    return { recursiveReadOnlyMounts: no(why), userNamespaces: no(why) };
  }
  let rro: Support;
  if (!(features.mountOptions ?? []).includes("rro")) rro = no(`runtime ${name} does not list the mount option "rro" in its features (too old)`);
  else if (!atLeast(kernel, KERNEL_MOUNT_SETATTR)) rro = no(`kernel ${kernelText} lacks mount_setattr (needs >= ${KERNEL_MOUNT_SETATTR.join(".")})`);
  else rro = yes;

  let userns: Support;
  const runtimeIdmap = features.linux?.mountExtensions?.idmap?.enabled === true;
  if (!(features.linux?.namespaces ?? []).includes("user")) userns = no(`runtime ${name} does not support user namespaces`);
  else if (!atLeast(kernel, KERNEL_IDMAP_OVERLAY)) userns = no(`kernel ${kernelText} cannot mount overlayfs on id-mapped layers (needs >= ${KERNEL_IDMAP_OVERLAY.join(".")})`);
  else if (runtimeIdmap || cribIdmap.supported) userns = yes;
  else userns = no(`runtime ${name} cannot make id-mapped mounts (no linux.mountExtensions.idmap in its features) and ${cribIdmap.reason}`);
  return { recursiveReadOnlyMounts: rro, userNamespaces: userns };
}

/**
 * Whether crib makes id-mapped mounts itself before handing a bundle to the runtime (as
 * containerd 2 does for runtimes without idmap support): it does (open_tree +
 * mount_setattr, src/sys/idmap.ts), as far as the kernel has mount_setattr.
 */
export const CRIB_IDMAP: Support = yes;

const FEATURES_TIMEOUT_MS = 10_000;
/** `features` prints a few KB; bound what is read from a misbehaving binary. */
const MAX_FEATURES_BYTES = 1 << 20;

async function runFeatures(path: string): Promise<OciFeatures | Error> {
  try {
    const proc = Bun.spawn([path, "features"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), FEATURES_TIMEOUT_MS);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    if (code !== 0) return new Error(`"${path} features" failed (exit ${code}): ${err.trim().split("\n")[0] ?? ""}`.trim());
    if (out.length > MAX_FEATURES_BYTES) return new Error(`"${path} features" printed more than ${MAX_FEATURES_BYTES} bytes`);
    const parsed: unknown = JSON.parse(out);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return new Error(`"${path} features" did not print a JSON object`);
    return parsed as OciFeatures;
  } catch (e) {
    return new Error(`"${path} features" gave no usable answer: ${errorMessage(e)}`);
  }
}

const cache = new Map<string, Promise<HandlerFeatures>>();

/** The features of the handler `name` whose binary is `path` (a name on PATH or absolute). */
export async function handlerFeatures(name: string, path: string): Promise<HandlerFeatures> {
  const resolved = await findExecutable(path);
  if (resolved === undefined) {
    const why = no(`runtime ${name}: "${path}" is not an executable on PATH`);
    return { path: "", recursiveReadOnlyMounts: why, userNamespaces: why };
  }
  const mtime = await stat(resolved).then((s) => s.mtimeMs, () => 0);
  const key = `${name}\0${resolved}\0${mtime}`;
  let p = cache.get(key);
  if (p === undefined) {
    p = runFeatures(resolved).then((f) => ({ path: resolved, ...decideFeatures(name, f, kernelVersion(), CRIB_IDMAP) }));
    cache.set(key, p);
  }
  return p;
}

/** RuntimeHandlerFeatures of the CRI for one handler. */
export async function criHandlerFeatures(name: string, path: string): Promise<{ recursive_read_only_mounts: boolean; user_namespaces: boolean }> {
  const f = await handlerFeatures(name, path);
  return { recursive_read_only_mounts: f.recursiveReadOnlyMounts.supported, user_namespaces: f.userNamespaces.supported };
}

/** Features of crib itself, whatever the handler. */
export const NODE_FEATURES: { supplementalGroupsPolicy: Support; userNamespacesHostNetwork: Support } = {
  supplementalGroupsPolicy: yes,
  userNamespacesHostNetwork: no("crib gives a pod with a user namespace its own network namespace: hostNetwork with hostUsers: false is refused"),
};

/** Every feature, per handler, with the reason it is off: for Status(verbose) and `crib ctl info`. */
export async function featureReport(handlers: Record<string, { path: string }>): Promise<{
  handlers: Record<string, HandlerFeatures>;
  node: typeof NODE_FEATURES;
  kernel: string;
}> {
  const out: Record<string, HandlerFeatures> = {};
  for (const [name, h] of Object.entries(handlers)) out[name] = await handlerFeatures(name, h.path);
  return { handlers: out, node: NODE_FEATURES, kernel: release() };
}
