// Temp dirs for tests, removed after the whole run (test/preload.ts) even if a
// test failed half way; a test that cleans up itself loses nothing by this.
// (bun test fires no process "exit" event, hence the preload's afterAll.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const d of made.splice(0)) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // a mount still inside: the test that made it reports the leak
    }
  }
}
