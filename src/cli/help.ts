// Help text, usage lines and flag lists, rendered from a CommandSpec.
import type { FlagSpec } from "./args.ts";
import { COMMON_FLAGS, type CommandSpec } from "./command.ts";

/** `crib ctl ps [flags]`: the command's path and its arguments. */
export function usageLine(spec: CommandSpec, path: string): string {
  return `${path} ${spec.args}`.trimEnd();
}

function flagName(f: FlagSpec): string {
  return `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.boolean ? "" : ` ${f.value ?? "VALUE"}`}`;
}

function flagHelp(f: FlagSpec): string {
  const values = f.values ? `: ${f.values.join(", ")}` : "";
  return `${f.help}${values}${f.default !== undefined ? ` (default ${f.default})` : ""}${f.repeat ? " (repeatable)" : ""}`;
}

export function flagTable(flags: FlagSpec[]): string {
  const width = Math.max(...flags.map((f) => flagName(f).length)) + 3;
  return flags.map((f) => `  ${flagName(f).padEnd(width)}${flagHelp(f)}`).join("\n");
}

/** Commands as an aligned list: `  name    summary`. */
export function commandList(specs: readonly CommandSpec[], prefix = ""): string {
  const shown = specs.filter((s) => !s.hidden);
  const label = (s: CommandSpec) => prefix ? `${prefix} ${s.name} ${s.args}`.trimEnd() : s.name;
  const width = Math.max(...shown.map((s) => label(s).length)) + 3;
  return shown.map((s) => `  ${label(s).padEnd(width)}${s.summary}${s.aliases?.length ? ` (also: ${s.aliases.join(", ")})` : ""}`).join("\n");
}

export interface HelpExtra {
  /** A "Commands:" section (crib ctl lists its commands). */
  commands?: readonly CommandSpec[];
  /** A last line (where crib ctl's global flags go). */
  footer?: string;
}

export function renderHelp(spec: CommandSpec, path: string, extra: HelpExtra = {}): string {
  const parts = [`${path}: ${spec.summary}`, `Usage:\n  ${usageLine(spec, path)}`];
  if (extra.commands) parts.push(`Commands:\n${commandList(extra.commands)}`);
  parts.push(`Flags:\n${flagTable([...spec.flags, ...COMMON_FLAGS])}`);
  if (spec.aliases?.length) parts.push(`Aliases: ${spec.aliases.join(", ")}`);
  parts.push(`Examples:\n${spec.examples.map((e) => `  ${e}`).join("\n")}`);
  if (extra.footer) parts.push(extra.footer);
  return parts.join("\n\n") + "\n";
}
