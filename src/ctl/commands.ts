// Every `crib ctl` command, in the order help lists them: the one table that the
// dispatcher, the help, the completions and docs/cli.md are made from.
import { attach, exec, portForward } from "./stream_commands.ts";
import { complete } from "./complete_command.ts";
import type { CtlCommand } from "./command.ts";
import { images, inspecti, pull, rmi, store } from "./image_commands.ts";
import { load, pin, save, unpin } from "./archive_commands.ts";
import { info, version } from "./runtime_commands.ts";
import { create, inspect, inspectp, logs, pods, ps, rm, rmp, runp, start, stop, stopp } from "./runtime_objects.ts";
import { events, stats, statsp } from "./stats_commands.ts";
import { verify } from "./verify_command.ts";

export const CTL_COMMANDS: readonly CtlCommand[] = [
  version, info,
  pull, verify, images, inspecti, rmi, store, load, save, pin, unpin,
  pods, runp, stopp, rmp, inspectp,
  ps, create, start, stop, rm, inspect, logs, exec, attach, portForward,
  stats, statsp, events,
  complete,
];
