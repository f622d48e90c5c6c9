// Lexical path cleaning for tar entry names and hardlink targets. Pure: no file
// system access. The applier decides what an escape means (it refuses it).
//
// Rules, as CRI-O (containers/storage) and Docker apply them: "." and empty
// components vanish, ".." removes the previous component; an absolute name is taken
// relative to the layer root (".." at the root stays at the root, as in Go's
// filepath.Clean("/..") == "/"); a relative name whose ".." climbs above the root
// escapes. containerd instead clamps such names at the root; we refuse them, because
// no honest layer contains one.

/** The name split into clean components, or null when it climbs above the root. */
export function cleanComponents(name: string): string[] | null {
  const absolute = name.startsWith("/");
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0) out.pop();
      else if (!absolute) return null;
      continue;
    }
    out.push(part);
  }
  return out;
}

/**
 * The entry name as a clean path relative to the layer root ("" is the root itself),
 * or null when it escapes the root.
 */
export function cleanEntryPath(name: string): string | null {
  const parts = cleanComponents(name);
  return parts === null ? null : parts.join("/");
}

/** The parent of a clean relative path ("" for a top-level name). */
export function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

/** The last component of a clean relative path. */
export function baseOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? rel : rel.slice(i + 1);
}

/** `rel` joined below `dir` (both clean and relative). */
export function joinRel(dir: string, rel: string): string {
  return dir === "" ? rel : `${dir}/${rel}`;
}

/** True when `rel` is `dir` or lies below it. */
export function isWithin(rel: string, dir: string): boolean {
  return dir === "" || rel === dir || rel.startsWith(dir + "/");
}
