// Getting unpacked layers and renames onto the disk before the store records them.
//
// Without it a power cut soon after a pull can leave a layer that looks complete
// (names, modes, sizes) but holds empty files: the page cache had them, the disk did
// not. A recorded layer is never unpacked again, so every container using it breaks
// until the image is removed by hand (containerd #5854 and moby #49784; containerd 2.0
// added image_pull_with_sync_fs, off by default). crib flushes by default: edge boxes
// lose power. One syncfs(2) per layer flushes the filesystem that holds it; it runs in
// coreutils' `sync --file-system` because a bun:ffi call is synchronous and a flush of
// a large layer would stall the daemon's event loop (gRPC, streaming) meanwhile.
import { open } from "node:fs/promises";
import { internal } from "../errors.ts";
import { childEnv } from "../util/child_env.ts";

/** Flush the whole filesystem holding `path` (data and metadata) to the disk. */
export async function syncFileSystemOf(path: string): Promise<void> {
  let proc;
  try {
    proc = Bun.spawn(["sync", "--file-system", path], { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: childEnv() });
  } catch (e) {
    throw internal(`cannot flush ${path} to disk: starting coreutils' sync failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw internal(`cannot flush ${path} to disk: sync --file-system exited with ${code}: ${err.trim()}`);
}

/** fsync a directory, so that a rename or a new entry in it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
