// A small argv parser: `--flag value`, `--flag=value`, `-f value`, boolean
// flags, and positionals. Each command declares its flags so typos are errors.

export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  /** Boolean flags take no value. */
  boolean?: boolean;
  /** Repeatable flags collect every value. */
  repeat?: boolean;
  /** The placeholder for the value in help (VALUE unless given). */
  value?: string;
  /** The value used when the flag is absent, as help shows it. */
  default?: string;
  /** The only values accepted (checked by parseArgs; completed by the shells). */
  values?: string[];
  /** What the value names, for shell completion. */
  complete?: "file" | "dir" | "container" | "pod" | "image";
  help: string;
}

export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
}

export class UsageError extends Error {}

/** `-h`/`--help` was on the line: print the command's help instead of running it. */
export class HelpRequested extends Error {}

export interface ParseOptions {
  /** The first positional ends the flags: the rest is a command line of its own (exec). */
  stopAtPositional?: boolean;
}

export function parseArgs(argv: string[], specs: FlagSpec[], opts: ParseOptions = {}): ParsedArgs {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag --${name}`);
    } else if (arg.startsWith("-") && arg.length > 1) {
      // Combined short booleans such as -it.
      const letters = arg.slice(1);
      if (letters.length > 1 && [...letters].every((l) => byShort.get(l)?.boolean)) {
        for (const l of letters) flags.set(byShort.get(l)!.name, ["true"]);
        continue;
      }
      spec = byShort.get(letters);
      if (!spec) throw new UsageError(`unknown flag ${arg}`);
    } else {
      if (opts.stopAtPositional) {
        positionals.push(...argv.slice(i));
        break;
      }
      positionals.push(arg);
      continue;
    }
    let value: string;
    if (spec.boolean) {
      value = inline ?? "true";
    } else if (inline !== undefined) {
      value = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag --${spec.name} needs a value`);
      value = next;
      i++;
    }
    if (spec.values && !spec.values.includes(value)) throw new UsageError(`--${spec.name} must be one of ${spec.values.join(", ")} (got ${JSON.stringify(value)})`);
    const prev = flags.get(spec.name);
    flags.set(spec.name, spec.repeat && prev ? [...prev, value] : [value]);
  }
  return { flags, positionals };
}

/**
 * Whether -h/--help is on the line as a flag: anywhere before `--`, but not as the
 * value of another flag, nor (with stopAtPositional) inside the command line of exec.
 */
export function helpAsked(argv: string[], specs: FlagSpec[], opts: ParseOptions = {}): boolean {
  const valued = new Set(specs.filter((s) => !s.boolean).flatMap((s) => [`--${s.name}`, ...(s.short ? [`-${s.short}`] : [])]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return false;
    if (a === "-h" || a === "--help") return true;
    if (valued.has(a)) i++;
    else if (!a.startsWith("-") && opts.stopAtPositional) return false;
  }
  return false;
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  return args.flags.get(name)?.at(-1);
}

export function boolFlag(args: ParsedArgs, name: string): boolean {
  const v = flag(args, name);
  return v !== undefined && v !== "false";
}

/** Key=value pairs of a repeatable flag (--label a=1 --label b=2). */
export function pairs(args: ParsedArgs, name: string): Record<string, string> {
  return Object.fromEntries((args.flags.get(name) ?? []).map((l) => {
    const eq = l.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${name} wants KEY=VALUE, got ${JSON.stringify(l)}`);
    return [l.slice(0, eq), l.slice(eq + 1)];
  }));
}
