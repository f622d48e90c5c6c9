// Entry of `crib monitor`, the node's resident container monitor: its own bundle in
// the compiled binary, holding only the monitor's modules.
import { exitWith } from "../cli/exit.ts";
import { MONITOR } from "../cli/faces.ts";
import { runMonitor } from "../cli/monitor.ts";

export function start(_face: string, argv: string[]): void {
  exitWith(runMonitor(argv), { spec: MONITOR, path: "crib monitor" });
}
