// SIGHUP: read the config file again and apply what can change under a running
// daemon (as CRI-O does): the log level, registries (mirrors, auth, TLS), pinned
// images and the sandbox image, pull settings, the image signature policy (its
// key files are read again too). Everything else (socket, root,
// state, runtime handlers, CNI dirs, streaming, metrics) is fixed at start-up:
// those changes are logged by key and wait for a restart. A file that does not
// parse changes nothing.
import { loadConfig, type Config } from "../config/config.ts";
import { errorMessage } from "../errors.ts";
import { compilePolicy, type Policy } from "../image/trust/keys.ts";
import { log, setLogLevel } from "../log/logger.ts";
import type { CriContext } from "../cri/context.ts";

const reloadLog = log.with({ component: "reload" });

/** Config keys (and everything under them) that a reload applies. */
export const RELOADABLE_KEYS = ["log.level", "registries", "image", "pull", "policy"] as const;

export interface ReloadOutcome {
  /** Changed keys that now have their new value (leaf paths such as "log.level"). */
  applied: string[];
  /** Changed keys that need a restart; the daemon keeps their old value. */
  needsRestart: string[];
  /** Why nothing was applied (the file could not be read or is invalid). */
  error?: string;
  /** Image ids pinned or unpinned because image.pinned changed. */
  pinned: string[];
  unpinned: string[];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Leaf paths whose values differ ("registries.mirrors.docker.io.endpoint"); lists compare whole. */
export function changedKeys(a: unknown, b: unknown, path = ""): string[] {
  if (isPlainObject(a) && isPlainObject(b)) {
    const out: string[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...changedKeys(a[k], b[k], path ? `${path}.${k}` : k));
    return out;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

export function isReloadable(key: string): boolean {
  return RELOADABLE_KEYS.some((p) => key === p || key.startsWith(`${p}.`));
}

/** Reload the config file the daemon started with (`path` as given to --config, if any). */
export function reloadConfig(d: CriContext, path: string | undefined): ReloadOutcome {
  let next: Config;
  let source: string;
  let policy: Policy | undefined;
  try {
    ({ config: next, source } = loadConfig(path, (c) => {
      policy = compilePolicy(c.policy);
    }));
  } catch (e) {
    const error = errorMessage(e);
    reloadLog.error("config reload failed; the daemon keeps its running config", { error });
    return { applied: [], needsRestart: [], error, pinned: [], unpinned: [] };
  }
  const changed = changedKeys(d.config, next);
  const applied = changed.filter(isReloadable);
  const needsRestart = changed.filter((k) => !isReloadable(k));

  setLogLevel(next.log.level);
  d.config.log = { ...d.config.log, level: next.log.level };
  // Registries, pull and image settings: the image component owns them (and
  // shares the config object with the daemon).
  const { pinned, unpinned } = d.images.applySettings(next, policy);
  d.configSource = source;

  reloadLog.info("config reloaded", { config: source, applied, pinned: pinned.length, unpinned: unpinned.length });
  if (needsRestart.length > 0) {
    reloadLog.warn("config changes that need a restart of crib were not applied; the daemon keeps the old values", { keys: needsRestart });
  }
  return { applied, needsRestart, pinned, unpinned };
}
