// Entry of `crib pause`, PID 1 of pods that share a PID namespace: its own, minimal
// bundle, since one runs per such pod.
import { exitWith } from "../cli/exit.ts";
import { pause } from "../cli/pause.ts";

export function start(): void {
  exitWith(pause());
}
