// The CRI socket's life: parent directory, stale-file handling, mode.
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { chmod, chown, lstat, mkdir, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { CribError, errnoCode, errorMessage, failedPrecondition } from "../errors.ts";

/** Whether something accepts connections on the unix socket at `path`. */
export function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/** The socket path is taken: by a live server, or by something that is not a socket. */
export class SocketInUseError extends CribError {
  constructor(message: string) {
    super("already_exists", message);
  }
}

/**
 * Make `path` ready to bind: create its directory, replace a stale socket
 * left by a crashed daemon, refuse if a live server answers there or if the
 * path is something other than a socket.
 */
export async function prepareSocketPath(path: string): Promise<{ replacedStale: boolean }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return { replacedStale: false };
    throw e;
  }
  if (!st.isSocket()) throw new SocketInUseError(`${path} exists and is not a socket; remove it or choose another socket path`);
  if (await socketIsLive(path)) throw new SocketInUseError(`another server is already listening on ${path} (is crib already running?)`);
  await unlink(path);
  return { replacedStale: true };
}

/**
 * The gid of `group` (a name from /etc/group, or a number) for the `socketGroup`
 * setting; undefined for "" (the socket keeps root's group).
 */
export function socketGroupId(group: string, groupFile = "/etc/group"): number | undefined {
  if (group === "") return undefined;
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = readFileSync(groupFile, "utf8");
  } catch (e) {
    throw failedPrecondition(`socketGroup ${JSON.stringify(group)}: cannot read ${groupFile}: ${errorMessage(e)}`);
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw failedPrecondition(`socketGroup ${JSON.stringify(group)}: no such group in ${groupFile}`);
}

/** Socket mode 0660: root and the socket's group (socketGroup, e.g. a kubelet group) only. */
export async function restrictSocket(path: string, gid: number | undefined): Promise<void> {
  if (gid !== undefined) await chown(path, 0, gid);
  await chmod(path, 0o660);
}

export async function removeSocket(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw e;
  }
}
