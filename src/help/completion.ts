// `crib completion bash|zsh|fish`: a completion script made from the command tables
// (faces.ts, ctl/commands.ts): faces, ctl commands, flags and their values, and the
// ids of containers, pods and images, asked of the running daemon through the hidden
// `crib ctl __complete KIND` (which prints nothing when no daemon answers).
import { CTL_COMMANDS } from "../ctl/commands.ts";
import { UsageError, type FlagSpec } from "../cli/args.ts";
import { COMMON_FLAGS, parseCommand, type CommandSpec, type Operand } from "../cli/command.ts";
import { COMPLETION, CTL, CTL_GLOBAL_FLAGS, FACES } from "../cli/faces.ts";

/** One completable command: its words after `crib` ("ctl ps"), and its spec. */
interface Entry {
  key: string;
  spec: CommandSpec;
}

function entries(): Entry[] {
  const shown = <T extends CommandSpec>(specs: readonly T[]) => specs.filter((s) => !s.hidden);
  const out: Entry[] = shown(FACES).map((spec) => ({ key: spec.name, spec }));
  for (const cmd of shown(CTL_COMMANDS)) for (const name of [cmd.name, ...(cmd.aliases ?? [])]) out.push({ key: `ctl ${name}`, spec: cmd });
  return out;
}

const faceNames = () => FACES.filter((f) => !f.hidden).map((f) => f.name);
const ctlNames = () => CTL_COMMANDS.filter((c) => !c.hidden).flatMap((c) => [c.name, ...(c.aliases ?? [])]);
const spellings = (f: FlagSpec) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])];
const allFlags = (spec: CommandSpec) => [...spec.flags, ...COMMON_FLAGS];

/** What a flag's value or a positional is completed with: a word list or @file/@dir/@container/@pod/@image. */
function flagCompletion(f: FlagSpec): string | undefined {
  if (f.values) return f.values.join(" ");
  return f.complete ? `@${f.complete}` : undefined;
}

function operandCompletion(kind: Operand | undefined): string {
  switch (kind) {
    case undefined:
      return "";
    case "shell":
      return "bash zsh fish";
    case "command":
      return faceNames().join(" ");
    default:
      return `@${kind}`;
  }
}

/** The operand kind of positional n: the last kind repeats when the usage ends in "...". */
function operandAt(spec: CommandSpec, n: number): Operand | undefined {
  const ops = spec.operands ?? [];
  return ops[n] ?? (spec.args.trimEnd().endsWith("...") ? ops.at(-1) : undefined);
}

function bashName(key: string): string {
  return `_crib_k_${key.replace(/[^a-zA-Z0-9]/g, "_")}`;
}

function bashFunction(key: string, spec: CommandSpec, operandWords?: (n: string) => string): string {
  const flags = allFlags(spec);
  const valued = flags.filter((f) => !f.boolean);
  const cases = valued.map((f) => `      ${spellings(f).join("|")}) _crib_value "${flagCompletion(f) ?? ""}"; return;;`);
  const skip = valued.length ? `      ${valued.flatMap(spellings).join("|")}) ((j += 2)); continue;;\n` : "";
  const n = Math.max(spec.operands?.length ?? 0, 1);
  const positional = operandWords
    ? operandWords("$n")
    : [...Array.from({ length: n }, (_, i) => `    ${i}) _crib_value "${operandCompletion(operandAt(spec, i))}";;`), `    *) _crib_value "${operandCompletion(operandAt(spec, n))}";;`].join("\n");
  return `${bashName(key)}() {
  local prev=\${COMP_WORDS[COMP_CWORD-1]}
  if (( COMP_CWORD > $1 )); then
    case $prev in
${cases.join("\n")}
    esac
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "${flags.flatMap(spellings).join(" ")}" -- "$cur"))
    return
  fi
  local n=0 j=$1
  while (( j < COMP_CWORD )); do
    case \${COMP_WORDS[j]} in
${skip}      -*) ;;
      *) ((n++));;
    esac
    ((j++))
  done
  case $n in
${positional}
  esac
}
`;
}

export function bashScript(): string {
  const globalValued = CTL_GLOBAL_FLAGS.filter((f) => !f.boolean).flatMap(spellings).join("|");
  const fns = entries().filter((e) => e.key !== "ctl").map((e) => bashFunction(e.key, e.spec, e.key === "help" ? () => `    0) _crib_value "${faceNames().join(" ")}";;\n    1) [[ \${COMP_WORDS[$1]} == ctl ]] && _crib_value "${ctlNames().join(" ")}";;` : undefined));
  // `crib ctl` before its command: global flags, then the command's name.
  const ctlTop = bashFunction("ctl", CTL, () => `    0) _crib_value "${ctlNames().join(" ")}";;`);
  return `# bash completion for crib: source <(crib completion bash)
# (generated from crib's command table; ids come from the running daemon)

_crib_candidates() {
  "\${COMP_WORDS[0]}" ctl "\${_crib_global[@]}" --timeout 2 __complete "$1" 2>/dev/null
}

_crib_value() {
  case $1 in
    "") ;;
    @file) COMPREPLY=($(compgen -f -- "$cur"));;
    @dir) COMPREPLY=($(compgen -d -- "$cur"));;
    @container|@pod|@image) COMPREPLY=($(compgen -W "$(_crib_candidates "\${1#@}")" -- "$cur"));;
    *) COMPREPLY=($(compgen -W "$1" -- "$cur"));;
  esac
}

${[...fns, ctlTop.replace(bashName("ctl"), "_crib_k_ctl_top")].join("\n")}
_crib() {
  local cur=\${COMP_WORDS[COMP_CWORD]}
  local -a _crib_global=()
  COMPREPLY=()
  if (( COMP_CWORD == 1 )); then
    COMPREPLY=($(compgen -W "${faceNames().join(" ")}" -- "$cur"))
    return
  fi
  local key=\${COMP_WORDS[1]} start=2
  if [[ $key == ctl ]]; then
    local i=2
    while (( i < COMP_CWORD )); do
      case \${COMP_WORDS[i]} in
        ${globalValued}) _crib_global+=("\${COMP_WORDS[i]}" "\${COMP_WORDS[i+1]}"); ((i += 2));;
        -*) ((i++));;
        *) break;;
      esac
    done
    if (( i < COMP_CWORD )); then
      key="ctl_\${COMP_WORDS[i]}"
      start=$((i + 1))
    else
      key=ctl_top
    fi
  fi
  local fn=_crib_k_\${key//[^a-zA-Z0-9]/_}
  if type "$fn" >/dev/null 2>&1; then "$fn" "$start"; fi
}

complete -o default -F _crib crib
`;
}

export function zshScript(): string {
  // zsh runs the bash completion through its bashcompinit emulation.
  return `#compdef crib
# zsh completion for crib: source <(crib completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit

${bashScript().split("\n").filter((l) => !l.startsWith("# bash completion")).join("\n")}`;
}

const fishQuote = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

function fishValue(completion: string | undefined): string {
  if (!completion) return "";
  if (completion === "@file" || completion === "@dir") return " -F";
  if (completion.startsWith("@")) return ` -a '(__crib_candidates ${completion.slice(1)})'`;
  return ` -a ${fishQuote(completion)}`;
}

function fishFlags(at: string, spec: CommandSpec): string[] {
  return allFlags(spec).map((f) =>
    // -x: the value is not a file (-r -F where it is).
    `complete -c crib -n ${fishQuote(`__crib_at ${at}`)} -l ${f.name}${f.short ? ` -s ${f.short}` : ""}${f.boolean ? "" : f.complete === "file" || f.complete === "dir" ? " -r" : " -x"}${fishValue(flagCompletion(f))} -d ${fishQuote(f.help)}`);
}

export function fishScript(): string {
  const valued = CTL_GLOBAL_FLAGS.filter((f) => !f.boolean).flatMap(spellings).join(" ");
  const lines: string[] = [];
  for (const f of FACES.filter((x) => !x.hidden)) lines.push(`complete -c crib -n '__crib_at ""' -a ${f.name} -d ${fishQuote(f.summary)}`);
  for (const c of CTL_COMMANDS.filter((x) => !x.hidden)) {
    for (const name of [c.name, ...(c.aliases ?? [])]) lines.push(`complete -c crib -n '__crib_at ctl' -a ${name} -d ${fishQuote(c.summary)}`);
  }
  for (const e of entries()) {
    const at = e.key.replace(" ", "/");
    lines.push(...fishFlags(at, e.spec));
    // Positionals (fish does not count them: offer the first operand kind's candidates).
    const first = operandCompletion(operandAt(e.spec, 0));
    if (e.key === "help") lines.push(`complete -c crib -n '__crib_at help' -a ${fishQuote([...faceNames(), ...ctlNames()].join(" "))}`);
    else if (first) lines.push(`complete -c crib -n ${fishQuote(`__crib_at ${at}`)}${fishValue(first)}`);
  }
  return `# fish completion for crib: crib completion fish > ~/.config/fish/completions/crib.fish
# (generated from crib's command table; ids come from the running daemon)

# The face (serve, ctl, ...) and, after ctl and its global flags, the ctl command.
function __crib_words
    set -l w (commandline -opc)
    set -q w[2]; or return
    echo $w[2]
    test $w[2] = ctl; or return
    set -l i 3
    while test $i -le (count $w)
        if contains -- $w[$i] ${valued}
            set i (math $i + 2)
        else if string match -q -- '-*' $w[$i]
            set i (math $i + 1)
        else
            echo $w[$i]
            return
        end
    end
end

# __crib_at FACE[/COMMAND]: whether the line is there ("" = nothing typed yet).
function __crib_at
    set -l at (string join / (__crib_words))
    test "$at" = "$argv[1]"
end

function __crib_candidates
    set -l w (commandline -opc)
    set -l global
    set -l i 3
    while test $i -le (count $w)
        if contains -- $w[$i] ${valued}
            set -a global $w[$i] $w[(math $i + 1)]
            set i (math $i + 2)
        else
            break
        end
    end
    command -q $w[1]; or return
    $w[1] ctl $global --timeout 2 __complete $argv[1] 2>/dev/null
end

complete -c crib -f
${lines.join("\n")}
`;
}

export async function completion(argv: string[]): Promise<number> {
  const [shell, ...rest] = parseCommand(argv, COMPLETION).positionals;
  if (rest.length > 0) throw new UsageError(`completion takes one shell (got ${argv.join(" ")})`);
  const script = shell === "bash" ? bashScript() : shell === "zsh" ? zshScript() : shell === "fish" ? fishScript() : undefined;
  if (script === undefined) throw new UsageError(shell === undefined ? "which shell? give bash, zsh or fish" : `no completion for ${JSON.stringify(shell)}: bash, zsh or fish`);
  process.stdout.write(script);
  return 0;
}
