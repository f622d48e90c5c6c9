// The container process's argv, environment and working directory from the CRI config
// and the image config, by the rules Kubernetes documents (and Docker and containerd apply).

import { posix } from "node:path";
import { invalidArgument } from "../../errors.ts";
import type { KeyValue } from "../../protocol/types.ts";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * argv: `command` replaces the image's entrypoint AND drops its cmd; `args` alone replace
 * the cmd; neither = entrypoint + cmd. An entrypoint of [""] means none (Docker's way of
 * clearing it). Nothing at all is an error.
 */
export function processArgs(
  command: readonly string[],
  args: readonly string[],
  image: { entrypoint: readonly string[]; cmd: readonly string[] },
): string[] {
  let argv: string[];
  if (command.length > 0) {
    argv = [...command, ...args];
  } else {
    const entrypoint = image.entrypoint.length === 1 && image.entrypoint[0] === "" ? [] : [...image.entrypoint];
    argv = [...entrypoint, ...(args.length > 0 ? args : image.cmd)];
  }
  if (argv.length === 0) throw invalidArgument("no command specified: neither the container config nor the image has one");
  for (const a of argv) if (a.includes("\0")) throw invalidArgument(`command argument ${JSON.stringify(a)} contains a NUL byte`);
  return argv;
}

/**
 * The environment, later entries replacing earlier ones by key while keeping the first
 * position: defaults (PATH, HOSTNAME, TERM for a tty), then the image's env, then the
 * CRI envs. An image entry without "=" unsets the variable, as in Docker.
 */
export function processEnv(opts: {
  imageEnv: readonly string[];
  criEnvs: readonly KeyValue[];
  hostname?: string;
  tty: boolean;
}): string[] {
  const env = new Map<string, string>();
  const set = (k: string, v: string) => env.set(k, v);
  set("PATH", DEFAULT_PATH);
  if (opts.hostname) set("HOSTNAME", opts.hostname);
  if (opts.tty) set("TERM", "xterm");
  for (const e of opts.imageEnv) {
    const i = e.indexOf("=");
    if (i < 0) env.delete(e);
    else if (i > 0) set(e.slice(0, i), e.slice(i + 1));
  }
  for (const kv of opts.criEnvs) {
    if (kv.key === "" || kv.key.includes("=")) throw invalidArgument(`environment variable name ${JSON.stringify(kv.key)} is empty or contains "="`);
    set(kv.key, kv.value);
  }
  const out: string[] = [];
  for (const [k, v] of env) {
    if (k.includes("\0") || v.includes("\0")) throw invalidArgument(`environment variable ${JSON.stringify(k)} contains a NUL byte`);
    out.push(`${k}=${v}`);
  }
  return out;
}

/** The CRI working dir, else the image's, else "/"; a relative one is taken from "/". */
export function processCwd(criWorkingDir: string, imageWorkingDir: string): string {
  const wd = criWorkingDir !== "" ? criWorkingDir : imageWorkingDir !== "" ? imageWorkingDir : "/";
  if (wd.includes("\0")) throw invalidArgument(`working dir ${JSON.stringify(wd)} contains a NUL byte`);
  return posix.resolve("/", wd);
}
