// The faces of the crib binary (`crib serve`, `crib ctl`, ...), as the help, the usage
// errors, the completions and docs/cli.md show them. Data only: src/faces/dispatch.ts (loaded by
// every crib process) prints the top-level usage from it, so it imports nothing heavy.
import type { FlagSpec } from "./args.ts";
import type { CommandSpec } from "./command.ts";

export const DEFAULT_PREFIX = "/usr/local";
export const DEFAULT_UNIT_DIR = "/etc/systemd/system";

const CONFIG_FLAG: FlagSpec = {
  name: "config", short: "c", value: "FILE", complete: "file",
  default: "/etc/crib/crib.yaml", // config.ts's DEFAULT_CONFIG_PATH (a unit test keeps them equal)
  help: "config file (an absent default file means the embedded defaults)",
};

export const SERVE: CommandSpec = {
  name: "serve",
  summary: "run the daemon: the CRI socket for the kubelet, streaming and metrics",
  args: "[--config FILE]",
  flags: [CONFIG_FLAG],
  examples: ["crib serve", "crib serve --config /etc/crib/crib.yaml"],
};

/** Flags of `crib ctl` itself, before the command (as crictl's). */
export const CTL_GLOBAL_FLAGS: FlagSpec[] = [
  { name: "runtime-endpoint", short: "r", value: "ENDPOINT", help: "CRI endpoint, unix:///path (default: the socket of the config)" },
  { name: "image-endpoint", short: "i", value: "ENDPOINT", help: "image endpoint (default: the runtime endpoint)" },
  { ...CONFIG_FLAG, help: "crib config file to read the socket path from" },
  { name: "timeout", short: "t", value: "SECONDS", default: "10", help: "per-call timeout in seconds" },
];

export const CTL: CommandSpec = {
  name: "ctl",
  summary: "talk to a running daemon, like crictl",
  args: "[global flags] COMMAND [flags] [ARG...]",
  flags: CTL_GLOBAL_FLAGS,
  examples: ["crib ctl pull busybox:latest", "crib ctl -r unix:///run/crib/crib.sock ps -a"],
};

export const CONFIG: CommandSpec = {
  name: "config",
  summary: "print the effective config as YAML",
  args: "[--config FILE]",
  flags: [CONFIG_FLAG],
  examples: ["crib config", "crib config --config ./crib.yaml > effective.yaml"],
};

export const INSTALL: CommandSpec = {
  name: "install",
  summary: "copy crib to PREFIX/bin and write its systemd unit",
  args: "[--prefix DIR] [--unit-dir DIR] [--print-unit]",
  flags: [
    { name: "prefix", value: "DIR", complete: "dir", default: DEFAULT_PREFIX, help: "install the binary as PREFIX/bin/crib" },
    { name: "unit-dir", value: "DIR", complete: "dir", default: DEFAULT_UNIT_DIR, help: "where crib.service goes" },
    { name: "print-unit", boolean: true, help: "print the systemd unit and do nothing else" },
  ],
  examples: ["sudo ./crib install && sudo systemctl daemon-reload && sudo systemctl enable --now crib", "crib install --print-unit"],
};

export const MONITOR: CommandSpec = {
  name: "monitor",
  summary: "the node's container monitor (started by crib serve, not by hand)",
  args: "--state DIR [--log-level LEVEL]",
  flags: [
    { name: "state", value: "DIR", complete: "dir", help: "state dir: monitor.sock, monitor.pid and per-container state under monitor/" },
    { name: "log-level", value: "LEVEL", values: ["debug", "info", "warn", "error"], default: "info", help: "log level" },
    { name: "preflight", boolean: true, help: "parse the flags, load, and exit 0 (an upgrade runs this on the new binary first)" },
  ],
  examples: ["crib monitor --state /run/crib --preflight"],
};

export const VERSION_FACE: CommandSpec = {
  name: "version",
  summary: "print version, commit and CRI API version",
  args: "",
  flags: [],
  examples: ["crib version"],
};

export const COMPLETION: CommandSpec = {
  name: "completion",
  summary: "print a shell completion script (bash, zsh or fish)",
  args: "bash|zsh|fish",
  flags: [],
  operands: ["shell"],
  examples: ["source <(crib completion bash)", "crib completion fish > ~/.config/fish/completions/crib.fish"],
};

export const HELP: CommandSpec = {
  name: "help",
  summary: "help on a command (crib help ctl pull: on a ctl command)",
  args: "[COMMAND [CTL-COMMAND]]",
  flags: [],
  operands: ["command"],
  examples: ["crib help serve", "crib help ctl pull"],
};

export const PAUSE: CommandSpec = {
  name: "pause",
  summary: "PID 1 of a pod that shares one PID namespace (started by crib serve)",
  args: "",
  flags: [],
  examples: ["crib pause"],
  hidden: true,
};

/** Every face, in the order the top-level usage lists them. */
export const FACES: readonly CommandSpec[] = [SERVE, CTL, CONFIG, INSTALL, MONITOR, VERSION_FACE, COMPLETION, HELP, PAUSE];

export function topUsage(): string {
  const shown = FACES.filter((f) => !f.hidden);
  const width = Math.max(...shown.map((f) => f.name.length)) + 3;
  return `crib: a Kubernetes container runtime (CRI) in one binary

Usage: crib COMMAND [flags] [ARG...]

Commands:
${shown.map((f) => `  ${f.name.padEnd(width)}${f.summary}`).join("\n")}

Run "crib help COMMAND" or "crib COMMAND --help" for a command's usage, flags and examples;
"crib ctl --help" lists the ctl commands.
`;
}
