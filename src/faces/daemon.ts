// Entry of the daemon and the tools that talk to it or to its config: serve, ctl,
// config, install, help, completion. Loaded by src/faces/dispatch.ts; its own bundle in
// the compiled binary.
import { UsageError } from "../cli/args.ts";
import { findCommand } from "../cli/command.ts";
import { exitWith } from "../cli/exit.ts";
import { FACES } from "../cli/faces.ts";

async function run(face: string, argv: string[]): Promise<number> {
  switch (face) {
    case "serve":
      return (await import("../cli/serve.ts")).serve(argv);
    case "ctl":
      // ctl reports its own failures (it knows which of its commands failed).
      return (await import("../ctl/ctl.ts")).ctl(argv);
    case "config":
      return (await import("../cli/print_config.ts")).printConfig(argv);
    case "install":
      return (await import("../cli/install.ts")).install(argv);
    case "help":
      return (await import("../help/help_face.ts")).helpFace(argv);
    case "completion":
      return (await import("../help/completion.ts")).completion(argv);
    default:
      throw new UsageError(`unknown command "${face}"`);
  }
}

export function start(face: string, argv: string[]): void {
  const spec = findCommand(FACES, face);
  exitWith(run(face, argv), spec && { spec, path: `crib ${spec.name}` });
}
