// crib: one executable, several faces (see ARCHITECTURE.md).
import { UsageError, usageOf } from "./cli/args.ts";
import { SERVE_FLAGS } from "./cli/serve_flags.ts";
import { CribError } from "./errors.ts";
import { COMMIT, CRI_API_VERSION, VERSION } from "./version.ts";

const USAGE = `crib: a Kubernetes container runtime (CRI) in one binary

Usage:
  crib serve [--config FILE]     run the daemon (CRI socket for the kubelet)
  crib ctl COMMAND ...           talk to a running daemon, like crictl (crib ctl help)
  crib monitor --state DIR       the node's container monitor (started by serve)
  crib config [--config FILE]    print the effective config as YAML
  crib install [--prefix DIR]    copy crib to DIR/bin and write its systemd unit (--print-unit)
  crib version                   print version and commit

Flags of serve and config:
${usageOf(SERVE_FLAGS)}
`;

async function main(argv: string[]): Promise<number> {
  const [face, ...rest] = argv;
  switch (face) {
    // Faces load only what they use: the monitor and pause processes stay
    // resident next to every container, so they must not carry the gRPC,
    // registry and config code of the daemon.
    case "serve":
      return (await import("./cli/serve.ts")).serve(rest);
    case "ctl":
      return (await import("./ctl/ctl.ts")).ctl(rest);
    case "monitor":
      return (await import("./monitor/main.ts")).runMonitor(rest);
    case "pause":
      return (await import("./cli/pause.ts")).pause();
    case "config":
      return (await import("./cli/print_config.ts")).printConfig(rest);
    case "install":
      return (await import("./cli/install.ts")).install(rest);
    case "version":
    case "--version":
      process.stdout.write(`crib version ${VERSION}\ncommit: ${COMMIT}\nCRI API: ${CRI_API_VERSION}\n`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return face === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${face}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`crib: ${err.message}\nRun "crib help" for usage.\n`);
      process.exit(2);
    }
    if (err instanceof CribError) {
      process.stderr.write(`crib: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`crib: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
