// One `crib ctl` command: its spec (help, usage, flags, examples, completion) and the
// handler that runs it. ctl_commands.ts lists them all.
import type { CommandSpec } from "../cli/command.ts";
import type { FlagSpec } from "../cli/args.ts";
import type { CtlContext } from "./context.ts";

export interface CtlCommand extends CommandSpec {
  run(ctx: CtlContext): Promise<number>;
}

/** -o for commands whose default is a table (crictl's list commands). */
export const TABLE_OUTPUT: FlagSpec = { name: "output", short: "o", value: "FORMAT", values: ["table", "json", "yaml"], default: "table", help: "output format" };
/** -o for commands that print one object (inspect, info). */
export const OBJECT_OUTPUT: FlagSpec = { name: "output", short: "o", value: "FORMAT", values: ["json", "yaml"], default: "json", help: "output format" };
export const QUIET: FlagSpec = { name: "quiet", short: "q", boolean: true, help: "print only ids, one a line" };
export const NO_TRUNC: FlagSpec = { name: "no-trunc", boolean: true, help: "print ids and digests in full" };
export const LABEL: FlagSpec = { name: "label", value: "KEY=VALUE", repeat: true, help: "only those with this label" };
