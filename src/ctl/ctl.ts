// `crib ctl`: a crictl-style client built into the binary.
import { loadConfig } from "../config/config.ts";
import { type FlagSpec, flag, parseArgs, UsageError, usageOf } from "../cli/args.ts";
import { ctlLoad, ctlPin, ctlSave, ctlUnpin } from "./archive_commands.ts";
import { CriClient } from "./client.ts";
import { ctlImages, ctlInspecti, ctlPull, ctlRmi, ctlStore } from "./image_commands.ts";
import { ctlInfo, ctlVersion } from "./runtime_commands.ts";
import { ctlEvents, ctlStats, ctlStatsp } from "./stats_commands.ts";
import { ctlAttach, ctlExec, ctlPortForward } from "./stream_commands.ts";
import { ctlVerify } from "./verify_command.ts";
import { ctlCreate, ctlInspect, ctlInspectp, ctlLogs, ctlPods, ctlPs, ctlRm, ctlRmp, ctlRunp, ctlStart, ctlStop, ctlStopp } from "./runtime_objects.ts";

export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: "runtime-endpoint", short: "r", help: "CRI endpoint (default: the configured socket, unix:///run/crib/crib.sock)" },
  { name: "image-endpoint", short: "i", help: "image endpoint (default: the runtime endpoint)" },
  { name: "config", short: "c", help: "crib config file to read the socket path from" },
  { name: "timeout", short: "t", help: "per-call timeout in seconds (default 10)" },
];

export interface CtlContext {
  client: CriClient;
  argv: string[];
  out: (text: string) => void;
}

type Command = { run: (ctx: CtlContext) => Promise<number>; help: string };

const COMMANDS: Record<string, Command> = {
  version: { run: ctlVersion, help: "runtime name and versions" },
  info: { run: ctlInfo, help: "runtime status, conditions and effective config (JSON)" },
  pull: { run: ctlPull, help: "pull an image, with live progress per layer" },
  images: { run: ctlImages, help: "list images" },
  img: { run: ctlImages, help: "alias of images" },
  inspecti: { run: ctlInspecti, help: "image status and config (JSON)" },
  rmi: { run: ctlRmi, help: "remove images" },
  store: { run: ctlStore, help: "what the image store holds on disk" },
  load: { run: ctlLoad, help: "import images from an archive (OCI layout or docker save tar, .gz/.zst)" },
  save: { run: ctlSave, help: "write images to an archive: -o FILE IMAGE... (OCI layout + docker manifest.json)" },
  pin: { run: ctlPin, help: "pin images: the kubelet's image GC keeps them" },
  unpin: { run: ctlUnpin, help: "unpin images" },
  verify: { run: ctlVerify, help: "check an image on its registry against the signature policy and print what matched" },
  pods: { run: ctlPods, help: "list pod sandboxes" },
  runp: { run: ctlRunp, help: "run a pod sandbox from a JSON/YAML pod config" },
  stopp: { run: ctlStopp, help: "stop pod sandboxes" },
  rmp: { run: ctlRmp, help: "remove pod sandboxes" },
  inspectp: { run: ctlInspectp, help: "pod sandbox status (JSON)" },
  ps: { run: ctlPs, help: "list containers (-a for all)" },
  create: { run: ctlCreate, help: "create a container: POD-ID CONTAINER-CONFIG POD-CONFIG" },
  start: { run: ctlStart, help: "start containers" },
  stop: { run: ctlStop, help: "stop containers" },
  rm: { run: ctlRm, help: "remove containers" },
  inspect: { run: ctlInspect, help: "container status (JSON)" },
  logs: { run: ctlLogs, help: "print a container's log (-f to follow)" },
  stats: { run: ctlStats, help: "container resource usage (-a for all, --pod ID)" },
  statsp: { run: ctlStatsp, help: "pod sandbox resource usage" },
  events: { run: ctlEvents, help: "print container and pod events as they happen, until Ctrl-C" },
  exec: { run: ctlExec, help: "run a command in a running container: [-i] [-t] CONTAINER CMD..." },
  attach: { run: ctlAttach, help: "attach to a running container's stdio: [-i] [-t] CONTAINER" },
  "port-forward": { run: ctlPortForward, help: "forward local ports to a pod: POD [LOCAL:]REMOTE..." },
};

function usage(): string {
  const cmds = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(14)}${c.help}`).join("\n");
  return `Usage: crib ctl [global flags] COMMAND [flags]\n\nCommands:\n${cmds}\n\nGlobal flags:\n${usageOf(GLOBAL_FLAGS)}\n`;
}

export async function ctl(argv: string[]): Promise<number> {
  // Global flags come before the command, as with crictl.
  const cmdIndex = findCommand(argv);
  const globalArgs = parseArgs(argv.slice(0, cmdIndex), GLOBAL_FLAGS);
  const name = argv[cmdIndex];
  if (name === undefined || name === "help") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new UsageError(`unknown ctl command "${name}" (crib ctl help lists them)`);
  const endpoint = flag(globalArgs, "runtime-endpoint") ?? `unix://${loadConfig(flag(globalArgs, "config")).config.socket}`;
  const timeout = Number(flag(globalArgs, "timeout") ?? "10");
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout must be a positive number of seconds`);
  const client = new CriClient(endpoint, timeout * 1000);
  try {
    return await cmd.run({ client, argv: argv.slice(cmdIndex + 1), out: (t) => process.stdout.write(t) });
  } finally {
    client.close();
  }
}

/** Index of the first positional, skipping global flags and their values. */
function findCommand(argv: string[]): number {
  const valued = new Set(GLOBAL_FLAGS.flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]));
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith("-")) i += valued.has(argv[i]!) ? 2 : 1;
  return i;
}
