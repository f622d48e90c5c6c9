// The CRI socket's life: parent directory, stale-file handling, mode.
import { connect } from "node:net";
import { chmod, link, lstat, mkdir, readdir, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CribError, errnoCode } from "../errors.ts";

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
 * Where the server binds before the socket is published: a sibling of `path`, so the
 * socket can be given its mode before anyone can reach it under its real name.
 */
export function stagingSocketPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.staging`);
}

/**
 * Publish a socket bound at `staging` under `path` with mode 0660 (root and the
 * socket's group, e.g. a kubelet group). Binding at the real path and chmod'ing after
 * would let a client connect while the mode is still the umask's. link(2) refuses an
 * existing name, so two daemons started at once cannot both publish.
 */
export async function publishSocket(staging: string, path: string): Promise<void> {
  await chmod(staging, 0o660);
  try {
    await link(staging, path);
  } catch (e) {
    if (errnoCode(e) === "EEXIST") throw new SocketInUseError(`another server took ${path} while crib was starting (is crib already running?)`);
    throw e;
  } finally {
    await removeSocket(staging);
  }
}

/** Staging sockets left by daemons that died between bind and publish. */
export async function removeStaleStagingSockets(path: string): Promise<string[]> {
  const prefix = `.${basename(path)}.`;
  const removed: string[] = [];
  for (const name of await readdir(dirname(path)).catch(() => [] as string[])) {
    if (!name.startsWith(prefix) || !name.endsWith(".staging")) continue;
    const pid = Number(name.slice(prefix.length, -".staging".length));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processExists(pid)) continue;
    await removeSocket(join(dirname(path), name));
    removed.push(name);
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}

export async function removeSocket(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw e;
  }
}
