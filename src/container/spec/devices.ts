// Device nodes and device cgroup rules of a container.
//
// Every container may use the usual pseudo devices (null, zero, full, random, urandom,
// tty, console, ptmx and its pts, tun) and mknod anything (the node is useless without
// an allow rule). CRI devices are stat'ed on the host (a directory stands for the device
// nodes below it, as containerd does) and get a node and an allow rule with the CRI
// permissions. Privileged containers may use every device but do NOT get the host's
// device nodes copied into their /dev (containerd and CRI-O do that); they can mknod
// what they need.

import { readdir, stat } from "node:fs/promises";
import { posix } from "node:path";
import { errnoCode, errorMessage, invalidArgument } from "../../errors.ts";
import type { Device } from "../../protocol/types.ts";
import { major, minor } from "../../sys/mknod.ts";
import type { OciDevice, OciDeviceRule, OciMount } from "./oci_types.ts";

/** Rules before any CRI device: deny all, then the standard set. */
export function defaultDeviceRules(privileged: boolean): OciDeviceRule[] {
  if (privileged) return [{ allow: true, access: "rwm" }];
  const c = (ma: number | undefined, mi: number | undefined, access = "rwm"): OciDeviceRule => {
    const r: OciDeviceRule = { allow: true, type: "c", access };
    if (ma !== undefined) r.major = ma;
    if (mi !== undefined) r.minor = mi;
    return r;
  };
  return [
    { allow: false, access: "rwm" },
    c(undefined, undefined, "m"), // mknod of any char device
    { allow: true, type: "b", access: "m" }, // and any block device
    c(1, 3), // null
    c(1, 5), // zero
    c(1, 7), // full
    c(1, 8), // random
    c(1, 9), // urandom
    c(5, 0), // tty
    c(5, 1), // console
    c(5, 2), // ptmx
    c(136, undefined), // pts/*
    c(10, 200), // net/tun
  ];
}

export interface ContainerDevices {
  devices: OciDevice[];
  rules: OciDeviceRule[];
  /** The host node of each device, by its path in the container. */
  hostPaths: Map<string, string>;
}

/**
 * Device nodes as bind mounts of their host nodes: in a user namespace nothing can
 * mknod, and runc would bind the node from the host at the container path, which need
 * not exist there (a CRI or CDI device with another name in the container).
 */
export function deviceBindMounts(devices: readonly OciDevice[], hostPaths: ReadonlyMap<string, string>): OciMount[] {
  return devices.map((d) => ({ destination: d.path, type: "bind", source: hostPaths.get(d.path) ?? d.path, options: ["bind", "rprivate"] }));
}

/** Nodes found below a directory device path; bounds a /dev walk. */
const MAX_DEVICES_PER_DIR = 4096;

function permissions(p: string, hostPath: string): string {
  const perms = p === "" ? "rwm" : p;
  if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) {
    throw invalidArgument(`device ${hostPath}: permissions ${JSON.stringify(p)} are not a combination of r, w, m`);
  }
  return perms;
}

async function nodeOf(hostPath: string, containerPath: string, access: string): Promise<{ device: OciDevice; rule: OciDeviceRule } | undefined> {
  const st = await stat(hostPath, { bigint: true });
  const type = st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : undefined;
  if (type === undefined) return undefined;
  const ma = major(st.rdev);
  const mi = minor(st.rdev);
  return {
    device: { type, path: containerPath, major: ma, minor: mi, fileMode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid) },
    rule: { allow: true, type, major: ma, minor: mi, access },
  };
}

/** Device nodes under a directory (recursively, skipping pts), for a directory CRI device. */
async function walk(dir: string, out: string[]): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (out.length >= MAX_DEVICES_PER_DIR) return;
    const p = posix.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "pts" && entry.name !== "shm" && entry.name !== ".udev") await walk(p, out);
    } else if (entry.isCharacterDevice() || entry.isBlockDevice()) {
      out.push(p);
    }
  }
}

/** The CRI devices of a container, resolved on the host. */
export async function resolveDevices(devices: readonly Device[]): Promise<ContainerDevices> {
  const out: ContainerDevices = { devices: [], rules: [], hostPaths: new Map() };
  for (const d of devices) {
    if (!d.host_path.startsWith("/")) throw invalidArgument(`device host_path ${JSON.stringify(d.host_path)} is not absolute`);
    const containerPath = d.container_path === "" ? d.host_path : d.container_path;
    if (!containerPath.startsWith("/")) throw invalidArgument(`device container_path ${JSON.stringify(containerPath)} is not absolute`);
    const access = permissions(d.permissions, d.host_path);
    try {
      const st = await stat(d.host_path);
      if (st.isDirectory()) {
        const nodes: string[] = [];
        await walk(d.host_path, nodes);
        for (const n of nodes) {
          const rel = posix.relative(d.host_path, n);
          const r = await nodeOf(n, posix.join(containerPath, rel), access);
          if (r) {
            out.devices.push(r.device);
            out.rules.push(r.rule);
            out.hostPaths.set(r.device.path, n);
          }
        }
        continue;
      }
      const r = await nodeOf(d.host_path, posix.normalize(containerPath), access);
      if (r === undefined) throw invalidArgument(`device ${d.host_path} is not a character or block device`);
      out.devices.push(r.device);
      out.rules.push(r.rule);
      out.hostPaths.set(r.device.path, d.host_path);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== undefined) throw invalidArgument(`device ${d.host_path}: ${errorMessage(err)}`, err);
      throw err;
    }
  }
  return out;
}
