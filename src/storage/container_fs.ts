// A container's root filesystem: an overlay of its image's unpacked layers
// (read-only, shared) and its own upper dir, mounted with mount(2).
//   /var/lib/crib/containers/<id>/{upper,work}   the writable layer
//   /run/crib/containers/<id>/rootfs             the merged mount
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, invalidArgument } from "../errors.ts";
import { MNT_DETACH, mount, umount2 } from "../sys/mount.ts";

/** mount(2) copies at most one page of options. */
const MAX_MOUNT_DATA = 4095;

export interface ContainerFs { rootfs: string; upper: string; work: string }

export class ContainerFsStore {
  constructor(private readonly root: string, private readonly state: string) {}

  paths(id: string): ContainerFs {
    const data = join(this.root, "containers", id);
    return { rootfs: join(this.state, "containers", id, "rootfs"), upper: join(data, "upper"), work: join(data, "work") };
  }

  /** Create the writable layer and mount the overlay; `layers` bottom first. */
  async create(id: string, layers: string[]): Promise<ContainerFs> {
    const p = this.paths(id);
    await mkdir(join(this.root, "containers", id), { recursive: true, mode: 0o700 });
    await mkdir(p.upper, { recursive: true, mode: 0o755 });
    await mkdir(p.work, { recursive: true, mode: 0o700 });
    await mkdir(p.rootfs, { recursive: true, mode: 0o755 });
    let lower = [...layers].reverse();
    if (lower.length === 0) {
      // overlay needs a lower dir; an image without layers gets an empty one.
      const empty = join(this.root, "containers", id, "empty");
      await mkdir(empty, { recursive: true });
      lower = [empty];
    }
    const data = `lowerdir=${lower.join(":")},upperdir=${p.upper},workdir=${p.work}`;
    if (data.length > MAX_MOUNT_DATA) {
      throw invalidArgument(`the image has too many layers (${layers.length}) for one overlay mount (options ${data.length} bytes > ${MAX_MOUNT_DATA})`);
    }
    await this.unmount(p.rootfs); // a mount left by a crash between mount and record
    mount("overlay", p.rootfs, "overlay", 0, data);
    return p;
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
    const p = this.paths(id);
    await this.unmount(p.rootfs);
    await rm(join(this.state, "containers", id), { recursive: true, force: true });
    await rm(join(this.root, "containers", id), { recursive: true, force: true });
  }
}

/** Whether `path` is a mount point, from /proc/self/mountinfo (field 5). */
export async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const escaped = path.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  return info.split("\n").some((line) => line.split(" ")[4] === escaped);
}
