// The binary's entry: `crib FACE ...` loads FACE's entry (a sibling in src/faces/)
// and hands it the rest of argv; version and help are answered here.
//
// Each face is its own entry point of the compiled binary (build/compile.ts) and is
// imported by a computed name, so the bundler keeps it apart: a process evaluates only
// its face's bundle. That matters for the resident processes: a bundle instantiates
// every top-level function of every module in it when it loads, so a monitor loaded
// from the daemon's bundle held ~1,800 more functions (~0.4 MiB) for gRPC, registry
// and image code it never runs; pause processes (one per pod sharing a PID namespace)
// likewise. The build splits code (build/compile.ts): modules shared by several faces
// are chunks each loads on its own, and every dynamic import() a chunk of its own.
import { runTopLevel } from "../cli/top_level.ts";

/** Face -> its entry module beside this file (also the list in build/compile.ts). */
const ENTRY: Record<string, string> = {
  serve: "daemon",
  ctl: "daemon",
  config: "daemon",
  install: "daemon",
  help: "daemon",
  completion: "daemon",
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
  process.exit(runTopLevel(argv));
}

dispatch(process.argv.slice(2));
