// Entry of the daemon and the tools that talk to it or to its config: serve, ctl,
// config, install. Loaded by src/faces/dispatch.ts; its own bundle in the compiled binary.
import { UsageError } from "../cli/args.ts";
import { exitWith } from "../cli/exit.ts";

async function run(face: string, argv: string[]): Promise<number> {
  switch (face) {
    case "serve":
      return (await import("../cli/serve.ts")).serve(argv);
    case "ctl":
      return (await import("../ctl/ctl.ts")).ctl(argv);
    case "config":
      return (await import("../cli/print_config.ts")).printConfig(argv);
    case "install":
      return (await import("../cli/install.ts")).install(argv);
    default:
      throw new UsageError(`unknown command "${face}"`);
  }
}

export function start(face: string, argv: string[]): void {
  exitWith(run(face, argv));
}
