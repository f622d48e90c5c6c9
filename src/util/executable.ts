// Where a command would run from: PATH lookup as a shell does it, or an absolute path checked.
import { access, constants } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";

/** Find an executable by name on PATH, or check an absolute path. */
export async function findExecutable(name: string): Promise<string | undefined> {
  const candidates = isAbsolute(name)
    ? [name]
    : (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(delimiter).map((dir) => join(dir, name));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}
