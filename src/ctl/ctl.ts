// `crib ctl`: a crictl-style client built into the binary. Global flags come before
// the command, as with crictl; each command's flags are parsed against its spec
// (commands.ts), so its help and its parser agree.
import { flag, UsageError, type ParsedArgs } from "../cli/args.ts";
import { findCommand, parseCommand } from "../cli/command.ts";
import { reportError, type Running } from "../cli/exit.ts";
import { CTL, CTL_GLOBAL_FLAGS } from "../cli/faces.ts";
import { renderHelp, type HelpExtra } from "../cli/help.ts";
import { loadConfig } from "../config/config.ts";
import { CriClient } from "./client.ts";
import type { CtlCommand } from "./command.ts";
import { CTL_COMMANDS } from "./commands.ts";

/** What the help of `crib ctl` (its command list) or of one ctl command adds to the spec's. */
export function ctlHelpExtra(of: readonly CtlCommand[] | CtlCommand): HelpExtra {
  if ("run" in of) return { footer: `Global flags (-r ENDPOINT, -c FILE, -t SECONDS) go before the command: crib ctl -r ENDPOINT ${of.name} ...` };
  return { commands: of };
}

const CTL_RUNNING: Running = { spec: CTL, path: "crib ctl", help: ctlHelpExtra(CTL_COMMANDS) };

function running(cmd: CtlCommand): Running {
  return { spec: cmd, path: `crib ctl ${cmd.name}`, help: ctlHelpExtra(cmd) };
}

export async function ctl(argv: string[]): Promise<number> {
  let now = CTL_RUNNING;
  try {
    const at = commandIndex(argv);
    const global = parseCommand(argv.slice(0, at), CTL);
    const name = argv[at];
    if (name === undefined) {
      process.stdout.write(renderHelp(CTL, CTL_RUNNING.path, CTL_RUNNING.help));
      return 2;
    }
    if (name === "help") return help(argv.slice(at + 1));
    const cmd = findCommand(CTL_COMMANDS, name);
    if (!cmd) throw new UsageError(`unknown command "${name}"`);
    now = running(cmd);
    const args = parseCommand(argv.slice(at + 1), cmd);
    const client = connect(global);
    try {
      return await cmd.run({ client, args, out: (t) => process.stdout.write(t) });
    } finally {
      client.close();
    }
  } catch (e) {
    return reportError(e, now);
  }
}

/** `crib ctl help [COMMAND]`, also reached by `crib help ctl [COMMAND]`. */
function help(argv: string[]): number {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stdout.write(renderHelp(CTL, CTL_RUNNING.path, CTL_RUNNING.help));
    return 0;
  }
  const cmd = findCommand(CTL_COMMANDS, name);
  if (!cmd || cmd.hidden) throw new UsageError(`unknown command "${name}"`);
  if (rest.length > 0) throw new UsageError(`help takes one command (got ${argv.join(" ")})`);
  const r = running(cmd);
  process.stdout.write(renderHelp(cmd, r.path, r.help));
  return 0;
}

function connect(global: ParsedArgs): CriClient {
  const timeout = Number(flag(global, "timeout") ?? "10");
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError("--timeout must be a positive number of seconds");
  const endpoint = flag(global, "runtime-endpoint") ?? `unix://${loadConfig(flag(global, "config")).config.socket}`;
  return new CriClient(endpoint, timeout * 1000);
}

/** Index of the command: the first positional, skipping global flags and their values. */
function commandIndex(argv: string[]): number {
  const valued = new Set(CTL_GLOBAL_FLAGS.filter((f) => !f.boolean).flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]));
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith("-")) i += valued.has(argv[i]!) ? 2 : 1;
  return i;
}
