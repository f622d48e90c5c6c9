// Image volumes (KEP-4639): an image's unpacked layers mounted read-only, noexec, once
// per image under <state>/image-volumes/<image id>, and bind-mounted from there into
// every container that asks for it. The mount is a read-only overlay of the layers (an
// empty bottom layer makes the overlay valid for a one-layer image too); nothing is
// copied. The container component says when the last user is gone (release).
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, invalidArgument } from "../errors.ts";
import { MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, mount, umount2 } from "../sys/mount.ts";
import { isMountPoint, MAX_MOUNT_DATA } from "./container_fs.ts";

export class ImageVolumes {
  /** Mounts under way, per image: two creates at once mount once. */
  private readonly pending = new Map<string, Promise<string>>();
  /** Creates between ensure() and recording their container (or failing), per image. */
  private readonly held = new Map<string, number>();

  constructor(private readonly state: string) {}

  private dir(imageId: string): string {
    return join(this.state, "image-volumes", imageId.replace(/^sha256:/, ""));
  }

  /**
   * The mounted image (its root directory), mounting it first if needed; `layers` bottom
   * first. The image stays mounted at least until the caller's unhold(), so a release for
   * another container cannot unmount it before this container is recorded as a user.
   */
  async ensure(imageId: string, layers: readonly string[]): Promise<string> {
    this.held.set(imageId, (this.held.get(imageId) ?? 0) + 1);
    let p = this.pending.get(imageId);
    if (p === undefined) {
      p = this.mountOnce(imageId, layers).finally(() => this.pending.delete(imageId));
      this.pending.set(imageId, p);
    }
    return p;
  }

  private async mountOnce(imageId: string, layers: readonly string[]): Promise<string> {
    const dir = this.dir(imageId);
    const root = join(dir, "rootfs");
    if (await isMountPoint(root)) return root;
    const empty = join(dir, "empty");
    await mkdir(root, { recursive: true, mode: 0o755 });
    await mkdir(empty, { recursive: true, mode: 0o755 });
    const data = `lowerdir=${[...layers].reverse().concat(empty).join(":")}`;
    if (data.length > MAX_MOUNT_DATA) throw invalidArgument(`image ${imageId} has too many layers (${layers.length}) to mount as a volume`);
    mount("overlay", root, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data);
    return root;
  }

  /** Whether a create holds the image as a volume (it is not recorded as used yet). */
  isHeld(imageId: string): boolean {
    return this.held.has(imageId);
  }

  unhold(imageId: string): void {
    const n = (this.held.get(imageId) ?? 0) - 1;
    if (n > 0) this.held.set(imageId, n);
    else this.held.delete(imageId);
  }

  /** Ids of the images that have a volume directory (mounted or left by a crash). */
  async mounted(): Promise<string[]> {
    const names = await readdir(join(this.state, "image-volumes")).catch(() => [] as string[]);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Unmount an image unless a create holds it or `inUse()` (a recorded container uses it); idempotent. */
  async release(imageId: string, inUse: () => boolean): Promise<void> {
    await this.pending.get(imageId)?.catch(() => {});
    if (this.held.has(imageId) || inUse()) return;
    const dir = this.dir(imageId);
    const root = join(dir, "rootfs");
    if (await isMountPoint(root)) {
      try {
        umount2(root, MNT_DETACH);
      } catch (e) {
        if (errnoCode(e) !== "EINVAL" && errnoCode(e) !== "ENOENT") throw e;
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
}
