// A small argv parser: `--flag value`, `--flag=value`, `-f value`, boolean
// flags, and positionals. Each face declares its flags so typos are errors.

export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  /** Boolean flags take no value. */
  boolean?: boolean;
  /** Repeatable flags collect every value. */
  repeat?: boolean;
  help: string;
}

export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
}

export class UsageError extends Error {}

export function parseArgs(argv: string[], specs: FlagSpec[]): ParsedArgs {
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
    const prev = flags.get(spec.name);
    flags.set(spec.name, spec.repeat && prev ? [...prev, value] : [value]);
  }
  return { flags, positionals };
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  return args.flags.get(name)?.at(-1);
}

export function boolFlag(args: ParsedArgs, name: string): boolean {
  const v = flag(args, name);
  return v !== undefined && v !== "false";
}

export function usageOf(specs: FlagSpec[]): string {
  return specs
    .map((s) => `  ${s.short ? `-${s.short}, ` : "    "}--${s.name}${s.boolean ? "" : " VALUE"}`.padEnd(34) + s.help)
    .join("\n");
}
