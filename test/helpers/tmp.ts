// Temp dirs for tests, removed when the test process exits even if a test
// failed half way (a test that cleans up itself loses nothing by this).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];
let hooked = false;

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const d of made) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          // a mount still inside: leave it for the test's own cleanup to report
        }
      }
    });
  }
  return dir;
}
