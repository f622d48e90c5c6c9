// `crib help [COMMAND [CTL-COMMAND]]`: the same text as `crib COMMAND --help`.
import { UsageError } from "../cli/args.ts";
import { findCommand, parseCommand } from "../cli/command.ts";
import { FACES, HELP, topUsage } from "../cli/faces.ts";
import { renderHelp } from "../cli/help.ts";

export async function helpFace(argv: string[]): Promise<number> {
  const [name, ...rest] = parseCommand(argv, HELP).positionals;
  if (name === undefined) {
    process.stdout.write(topUsage());
    return 0;
  }
  if (name === "ctl") return (await import("../ctl/ctl.ts")).ctl(["help", ...rest]);
  const spec = findCommand(FACES, name);
  if (!spec || spec.hidden) throw new UsageError(`unknown command "${name}"`);
  if (rest.length > 0) throw new UsageError(`${name} has no subcommands (got ${rest.join(" ")})`);
  process.stdout.write(renderHelp(spec, `crib ${spec.name}`));
  return 0;
}
