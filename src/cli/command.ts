// The shape of one command of the command line: what its help, its usage errors, the
// shell completions and docs/cli.md are all made from, and what its flags are parsed by,
// so that none of them can disagree with another.
import { boolFlag, HelpRequested, helpAsked, parseArgs, type FlagSpec, type ParsedArgs } from "./args.ts";

/** What a positional argument names, for shell completion. */
export type Operand = "container" | "pod" | "image" | "file" | "command" | "shell";

export interface CommandSpec {
  name: string;
  aliases?: string[];
  /** One line, lower case, no full stop: what the command does. */
  summary: string;
  /** What follows the command's name on its usage line, e.g. "[flags] CONTAINER-ID...". */
  args: string;
  flags: FlagSpec[];
  /** One or two command lines a person would type. */
  examples: string[];
  /** The kind of each positional (the last one repeats), for completion. */
  operands?: Operand[];
  /** The first positional ends the flags: what follows is the container's command line. */
  stopAtPositional?: boolean;
  /** Internal (pause, the completion helper): left out of help, completion and docs. */
  hidden?: boolean;
}

/** Flags every command takes. */
export const COMMON_FLAGS: FlagSpec[] = [
  { name: "help", short: "h", boolean: true, help: "print this help and exit" },
  { name: "debug", boolean: true, help: "on failure, print the stack trace too (also CRIB_DEBUG=1)" },
];

let debug = process.env.CRIB_DEBUG === "1";

/** Whether a failure should print its stack (--debug or CRIB_DEBUG=1). */
export function debugWanted(): boolean {
  return debug;
}

/** Parse a command's arguments against its spec; -h/--help anywhere throws HelpRequested. */
export function parseCommand(argv: string[], spec: CommandSpec): ParsedArgs {
  const specs = [...spec.flags, ...COMMON_FLAGS];
  const opts = { stopAtPositional: spec.stopAtPositional };
  if (helpAsked(argv, specs, opts)) throw new HelpRequested();
  const args = parseArgs(argv, specs, opts);
  if (boolFlag(args, "debug")) debug = true;
  return args;
}

export function findCommand<T extends CommandSpec>(table: readonly T[], name: string): T | undefined {
  return table.find((c) => c.name === name || c.aliases?.includes(name));
}
