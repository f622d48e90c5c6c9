// A container's root filesystem: an overlay of its image's unpacked layers
// (read-only, shared) and its own upper dir, mounted with mount(2).
//   /var/lib/crib/containers/<id>/{upper,work}   the writable layer
//   /run/crib/containers/<id>/rootfs             the merged mount
import { chown, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { errnoCode, errorMessage, invalidArgument } from "../errors.ts";
import { bindIdmapped } from "../sys/idmap.ts";
import { MNT_DETACH, mount, umount2 } from "../sys/mount.ts";

/** mount(2) copies at most one page of options. */
export const MAX_MOUNT_DATA = 4095;

export interface ContainerFs { rootfs: string; upper: string; work: string }

export class ContainerFsStore {
  constructor(private readonly root: string, private readonly state: string) {}

  paths(id: string): ContainerFs {
    const data = join(this.root, "containers", id);
    return { rootfs: join(this.state, "containers", id, "rootfs"), upper: join(data, "upper"), work: join(data, "work") };
  }

  /**
   * Create the writable layer and mount the overlay; `layers` bottom first. With `idmap`
   * (a pod user namespace) each layer is an id-mapped mount and the upper dir belongs to
   * the namespace's root, so the rootfs shows the image's owners as the pod's ids
   * without a file being chowned.
   */
  async create(id: string, layers: string[], idmap?: IdmapTarget): Promise<ContainerFs> {
    const p = this.paths(id);
    await mkdir(join(this.root, "containers", id), { recursive: true, mode: 0o700 });
    await mkdir(p.upper, { recursive: true, mode: 0o755 });
    await mkdir(p.work, { recursive: true, mode: 0o700 });
    await mkdir(p.rootfs, { recursive: true, mode: 0o755 });
    if (idmap) await chown(p.upper, idmap.rootUid, idmap.rootGid);
    let lower = [...layers].reverse();
    if (lower.length === 0) {
      // overlay needs a lower dir; an image without layers gets an empty one.
      const empty = join(this.root, "containers", id, "empty");
      await mkdir(empty, { recursive: true });
      lower = [empty];
    }
    await this.unmount(p.rootfs); // a mount left by a crash between mount and record
    if (!idmap) {
      mountOverlay(p, lower, layers.length);
      return p;
    }
    // Id-mapped copies of the layers, attached under the container's state dir only until
    // the overlay is mounted: overlayfs keeps private clones of its lower mounts.
    const mapped = join(dirname(p.rootfs), "lower");
    const lowers: string[] = [];
    try {
      for (const [i, layer] of lower.entries()) {
        const target = join(mapped, String(i));
        await mkdir(target, { recursive: true, mode: 0o700 });
        bindIdmapped(layer, target, idmap.usernsFd, false);
        lowers.push(target);
      }
      mountOverlay(p, lowers, layers.length);
    } finally {
      for (const l of lowers) umount2(l, MNT_DETACH);
      await rm(mapped, { recursive: true, force: true });
    }
    return p;
  }

  /**
   * An id-mapped bind mount of `source` (with its submounts) at a new path under the
   * container's state dir, for a volume of a container in a pod user namespace. The
   * caller detaches it once the runtime has made its own copy (see detachVolumes).
   */
  async idmappedVolume(id: string, n: number, source: string, idmap: IdmapTarget): Promise<string> {
    const target = join(this.state, "containers", id, "volumes", String(n));
    await mkdir(dirname(target), { recursive: true, mode: 0o711 });
    if ((await stat(source)).isDirectory()) await mkdir(target, { mode: 0o755 });
    else await writeFile(target, "", { mode: 0o444 });
    try {
      bindIdmapped(source, target, idmap.usernsFd, true);
    } catch (e) {
      if (errnoCode(e) === "EINVAL" || errnoCode(e) === "EPERM" || errnoCode(e) === "EOPNOTSUPP") {
        throw invalidArgument(`volume ${source}: its filesystem (or one mounted below it) cannot be id-mapped for a pod user namespace: ${errorMessage(e)}`, e);
      }
      throw e;
    }
    return target;
  }

  /** Detach every mount under the container's state dir but the rootfs (volumes after runc create). */
  async detachVolumes(id: string): Promise<void> {
    await unmountUnder(join(this.state, "containers", id, "volumes"));
  }

  /** Unmount if mounted; idempotent. */
  async unmount(rootfs: string): Promise<void> {
    if (!(await isMountPoint(rootfs))) return;
    try {
      umount2(rootfs, MNT_DETACH);
    } catch (e) {
      if (errnoCode(e) !== "EINVAL" && errnoCode(e) !== "ENOENT") throw e;
    }
  }

  /** Unmount and delete everything of the container; idempotent. */
  async remove(id: string): Promise<void> {
    // The rootfs and any volume still mounted there are below the state dir: never let
    // the rm below walk into them.
    await unmountUnder(join(this.state, "containers", id));
    await Promise.all([rm(join(this.state, "containers", id), { recursive: true, force: true }), rm(join(this.root, "containers", id), { recursive: true, force: true })]);
  }
}

/** Where to map a container's files: the pod user namespace and the host ids of its root. */
export interface IdmapTarget { usernsFd: number; rootUid: number; rootGid: number }

function mountOverlay(p: ContainerFs, lower: string[], layerCount: number): void {
  const data = `lowerdir=${lower.join(":")},upperdir=${p.upper},workdir=${p.work}`;
  if (data.length > MAX_MOUNT_DATA) {
    throw invalidArgument(`the image has too many layers (${layerCount}) for one overlay mount (options ${data.length} bytes > ${MAX_MOUNT_DATA})`);
  }
  mount("overlay", p.rootfs, "overlay", 0, data);
}

const unescapeMountinfo = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Lazily unmount every mount at or below `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<void> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const points = info.split("\n").map((l) => l.split(" ")[4]).filter((x): x is string => x !== undefined).map(unescapeMountinfo);
  const under = points.filter((m) => m === dir || m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
  for (const m of under) {
    try {
      umount2(m, MNT_DETACH);
    } catch (e) {
      if (errnoCode(e) !== "EINVAL" && errnoCode(e) !== "ENOENT") throw e;
    }
  }
}

/** Whether `path` is a mount point, from /proc/self/mountinfo (field 5). */
export async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const escaped = path.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  return info.split("\n").some((line) => line.split(" ")[4] === escaped);
}
