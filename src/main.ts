// crib: one executable, several faces (see ARCHITECTURE.md).
import { stringify } from "yaml";
import { ConfigError, loadConfig } from "./config/config.ts";
import { flag, parseArgs, UsageError, usageOf } from "./cli/args.ts";
import { pause } from "./cli/pause.ts";
import { SERVE_FLAGS, serve } from "./cli/serve.ts";
import { ctl } from "./ctl/ctl.ts";
import { runMonitor } from "./monitor/main.ts";
import { SocketInUseError } from "./daemon/socket.ts";
import { CribError } from "./errors.ts";
import { COMMIT, CRI_API_VERSION, VERSION } from "./version.ts";

const USAGE = `crib: a Kubernetes container runtime (CRI) in one binary

Usage:
  crib serve [--config FILE]     run the daemon (CRI socket for the kubelet)
  crib ctl COMMAND ...           talk to a running daemon, like crictl (crib ctl help)
  crib monitor --state DIR       the node's container monitor (started by serve)
  crib config [--config FILE]    print the effective config as YAML
  crib version                   print version and commit

Flags of serve and config:
${usageOf(SERVE_FLAGS)}
`;

async function main(argv: string[]): Promise<number> {
  const [face, ...rest] = argv;
  switch (face) {
    case "serve":
      return serve(rest);
    case "ctl":
      return ctl(rest);
    case "monitor":
      return runMonitor(rest);
    case "pause":
      return pause();
    case "config": {
      const args = parseArgs(rest, SERVE_FLAGS);
      const { config, source } = loadConfig(flag(args, "config"));
      process.stdout.write(`# effective crib config (from ${source})\n${stringify(config)}`);
      return 0;
    }
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
    if (err instanceof ConfigError || err instanceof SocketInUseError || err instanceof CribError) {
      process.stderr.write(`crib: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`crib: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
