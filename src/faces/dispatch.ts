// The binary's entry: `crib FACE ...` loads FACE's entry (a sibling in src/faces/)
// and hands it the rest of argv; version and help are answered here.
//
// Each face is its own entry point of the compiled binary (build/compile.ts) and is
// imported by a computed name, so the bundler keeps it apart: a process evaluates only
// its face's bundle. That matters for the resident processes: a bundle instantiates
// every top-level function of every module in it when it loads, so a monitor loaded
// from the daemon's bundle held ~1,800 more functions (~0.4 MiB) for gRPC, registry
// and image code it never runs; pause processes (one per pod sharing a PID namespace)
// likewise.
import { usageOf } from "../cli/args.ts";
import { SERVE_FLAGS } from "../cli/serve_flags.ts";
import { COMMIT, CRI_API_VERSION, VERSION } from "../version.ts";

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

/** Face -> its entry module beside this file (also the list in build/compile.ts). */
const ENTRY: Record<string, string> = {
  serve: "daemon",
  ctl: "daemon",
  config: "daemon",
  install: "daemon",
  monitor: "monitor",
  pause: "pause",
};

interface FaceEntry {
  start(face: string, argv: string[]): void;
}

async function loadEntry(name: string): Promise<FaceEntry> {
  // Compiled, the entries are embedded as .js beside this file; from source, .ts.
  const ext = Bun.main.startsWith("/$bunfs/") ? "js" : "ts";
  const spec = `./${name}.${ext}`;
  return (await import(spec)) as FaceEntry;
}

function dispatch(argv: string[]): void {
  const [face, ...rest] = argv;
  const entry = face === undefined ? undefined : ENTRY[face];
  if (entry !== undefined && face !== undefined) {
    loadEntry(entry).then(
      (m) => m.start(face, rest),
      (err: unknown) => {
        process.stderr.write(`crib: cannot load the ${face} face: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
    return;
  }
  switch (face) {
    case "version":
    case "--version":
      process.stdout.write(`crib version ${VERSION}\ncommit: ${COMMIT}\nCRI API: ${CRI_API_VERSION}\n`);
      process.exit(0);
      break;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      process.exit(face === undefined ? 2 : 0);
      break;
    default:
      process.stderr.write(`crib: unknown command "${face}"\nRun "crib help" for usage.\n`);
      process.exit(2);
  }
}

dispatch(process.argv.slice(2));
