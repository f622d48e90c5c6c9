// What src/faces/dispatch.ts answers without loading a face: the top-level usage, `crib version`,
// and an unknown command.
import { UsageError } from "./args.ts";
import { parseCommand } from "./command.ts";
import { reportError } from "./exit.ts";
import { topUsage, VERSION_FACE } from "./faces.ts";
import { COMMIT, CRI_API_VERSION, VERSION } from "../version.ts";

export function runTopLevel(argv: string[]): number {
  const [face, ...rest] = argv;
  switch (face) {
    case "version":
    case "--version":
      try {
        const args = parseCommand(rest, VERSION_FACE);
        if (args.positionals.length > 0) throw new UsageError(`version takes no arguments (got ${args.positionals.join(" ")})`);
      } catch (e) {
        return reportError(e, { spec: VERSION_FACE, path: "crib version" });
      }
      process.stdout.write(`crib version ${VERSION}\ncommit: ${COMMIT}\nCRI API: ${CRI_API_VERSION}\n`);
      return 0;
    case undefined:
    case "--help":
    case "-h":
      process.stdout.write(topUsage());
      return face === undefined ? 2 : 0;
    default:
      process.stderr.write(`crib: unknown command "${face}"\nRun "crib help" for usage.\n`);
      return 2;
  }
}
