import { describe, expect, test } from "bun:test";
import { existsSync, lstatSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { publishSocket, removeStaleStagingSockets, socketIsLive, SocketInUseError, stagingSocketPath } from "../../src/daemon/socket.ts";
import { tempDir } from "../helpers/tmp.ts";

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer((c) => c.end());
    s.once("error", reject);
    s.listen(path, () => resolve(s));
  });
}

describe("publishing the CRI socket", () => {
  test("the socket appears under its name already 0660 and serving; the staging name is gone", async () => {
    const dir = tempDir("crib-sock-");
    const path = join(dir, "crib.sock");
    const staging = stagingSocketPath(path);
    expect(staging.startsWith(join(dir, "."))).toBe(true);
    const server = await listen(staging);
    try {
      await publishSocket(staging, path);
      expect(lstatSync(path).mode & 0o777).toBe(0o660);
      expect(existsSync(staging)).toBe(false);
      expect(await socketIsLive(path)).toBe(true);
    } finally {
      server.close();
    }
  });

  test("a name taken meanwhile is refused and the staging socket removed", async () => {
    const dir = tempDir("crib-sock-");
    const path = join(dir, "crib.sock");
    writeFileSync(path, "");
    const staging = stagingSocketPath(path);
    const server = await listen(staging);
    try {
      const err = await publishSocket(staging, path).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SocketInUseError);
      expect((err as Error).message).toContain(path);
      expect(existsSync(staging)).toBe(false);
    } finally {
      server.close();
    }
  });

  test("staging sockets of dead daemons are removed, a live daemon's and other files kept", async () => {
    const dir = tempDir("crib-sock-");
    const path = join(dir, "crib.sock");
    const dead = join(dir, ".crib.sock.999999999.staging");
    const live = join(dir, `.crib.sock.${process.ppid}.staging`);
    const other = join(dir, ".other.sock.1.staging");
    for (const f of [dead, live, other]) writeFileSync(f, "");
    expect(await removeStaleStagingSockets(path)).toEqual([".crib.sock.999999999.staging"]);
    expect([existsSync(dead), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
  });
});
