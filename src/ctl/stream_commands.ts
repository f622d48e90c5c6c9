// crib ctl exec / attach / port-forward: call the RPC, then speak SPDY/3.1 to the URL
// it returns, as crictl does. With -t the local terminal goes to raw mode and its
// size follows the window.

import net from "node:net";
import { boolFlag, UsageError, type FlagSpec, type ParsedArgs } from "../cli/args.ts";
import { PortForwardClient, remoteCommand, type RemoteCommandIO, type RemoteCommandResult } from "../stream/client.ts";
import type { TerminalSize } from "../stream/status.ts";
import type { CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";

const STREAM_FLAGS: FlagSpec[] = [
  { name: "interactive", short: "i", boolean: true, help: "send this terminal's stdin to the container" },
  { name: "tty", short: "t", boolean: true, help: "a terminal: raw mode here, one stream for stdout and stderr" },
];

function streamFlags(args: ParsedArgs): { stdin: boolean; tty: boolean } {
  return { stdin: boolFlag(args, "interactive"), tty: boolFlag(args, "tty") };
}

/** Wire the local terminal (or pipes) to a remote command. */
function localIO(flags: { stdin: boolean; tty: boolean }): { io: RemoteCommandIO; restore: () => void } {
  const stdinIsTty = process.stdin.isTTY === true;
  const raw = flags.tty && flags.stdin && stdinIsTty;
  if (raw) process.stdin.setRawMode(true);
  const io: RemoteCommandIO = {
    tty: flags.tty,
    stdout: (c) => process.stdout.write(c),
    stderr: flags.tty ? undefined : (c) => process.stderr.write(c),
  };
  if (flags.stdin) {
    io.stdin = {
      onData: (fn) => process.stdin.on("data", (c: Buffer) => fn(c)),
      onEnd: (fn) => process.stdin.once("end", fn),
      pause: () => process.stdin.pause(),
      resume: () => process.stdin.resume(),
    };
  }
  let onResize: (() => void) | undefined;
  if (flags.tty && process.stdout.isTTY === true) {
    io.sizes = (send: (s: TerminalSize) => void) => {
      onResize = () => send({ width: process.stdout.columns ?? 80, height: process.stdout.rows ?? 24 });
      onResize();
      process.stdout.on("resize", onResize);
    };
  }
  return {
    io,
    restore: () => {
      if (raw) process.stdin.setRawMode(false);
      if (onResize) process.stdout.off("resize", onResize);
      if (flags.stdin) process.stdin.pause();
    },
  };
}

async function flushed(): Promise<void> {
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
}

async function run(command: string, url: string, flags: { stdin: boolean; tty: boolean }): Promise<number> {
  const { io, restore } = localIO(flags);
  let result: RemoteCommandResult;
  try {
    result = await remoteCommand(url, io);
  } finally {
    restore();
  }
  if (result.message) process.stderr.write(`crib ctl ${command}: ${result.message.trim()}\n`);
  await flushed();
  return result.exitCode;
}

export const exec: CtlCommand = {
  name: "exec",
  summary: "run a command in a running container",
  args: "[-i] [-t] CONTAINER-ID COMMAND [ARG...]",
  flags: STREAM_FLAGS,
  operands: ["container"],
  // Flags after CONTAINER-ID belong to COMMAND: `exec ID ls --help` runs ls --help.
  stopAtPositional: true,
  examples: ["crib ctl exec -it 4d5e6f sh", "crib ctl exec 4d5e6f cat /etc/hostname"],
  run: runExec,
};

async function runExec({ client, args }: CtlContext): Promise<number> {
  const f = streamFlags(args);
  const [container, ...rest] = args.positionals;
  const cmd = rest[0] === "--" ? rest.slice(1) : rest; // exec ID -- CMD, as kubectl
  if (!container || cmd.length === 0) throw new UsageError("give CONTAINER-ID and the COMMAND to run");
  const { url } = await client.call("RuntimeService", "Exec", {
    container_id: container, cmd, tty: f.tty, stdin: f.stdin, stdout: true, stderr: !f.tty, audit_request_id: "",
  });
  return run("exec", url, f);
}

export const attach: CtlCommand = {
  name: "attach",
  summary: "attach to a running container's stdio",
  args: "[-i] [-t] CONTAINER-ID",
  flags: STREAM_FLAGS,
  operands: ["container"],
  examples: ["crib ctl attach -it 4d5e6f", "crib ctl attach 4d5e6f"],
  run: runAttach,
};

async function runAttach({ client, args }: CtlContext): Promise<number> {
  const f = streamFlags(args);
  const [container, ...extra] = args.positionals;
  if (!container || extra.length > 0) throw new UsageError("give one CONTAINER-ID");
  const { url } = await client.call("RuntimeService", "Attach", {
    container_id: container, stdin: f.stdin, tty: f.tty, stdout: true, stderr: !f.tty, audit_request_id: "",
  });
  return run("attach", url, f);
}

function parseMapping(text: string): { local: number; remote: number } {
  const m = /^(\d*):(\d+)$|^(\d+)$/.exec(text);
  if (!m) throw new UsageError(`port-forward: "${text}" is not LOCALPORT:REMOTEPORT (or PORT)`);
  const remote = Number(m[2] ?? m[3]);
  const local = m[3] !== undefined ? remote : m[1] === "" ? 0 : Number(m[1]);
  if (remote < 1 || remote > 65535 || local < 0 || local > 65535) throw new UsageError(`port-forward: ports must be in 1..65535 (local 0 picks a free one): ${text}`);
  return { local, remote };
}

export const portForward: CtlCommand = {
  name: "port-forward",
  summary: "forward local ports to a pod's ports, until Ctrl-C",
  args: "POD-ID [LOCALPORT:]REMOTEPORT...",
  flags: [],
  operands: ["pod"],
  examples: ["crib ctl port-forward 1a2b3c 8080:80", "crib ctl port-forward 1a2b3c :80   # a free local port"],
  run: runPortForward,
};

async function runPortForward({ client, args, out }: CtlContext): Promise<number> {
  const [pod, ...specs] = args.positionals;
  if (!pod || specs.length === 0) throw new UsageError("give POD-ID and at least one [LOCALPORT:]REMOTEPORT");
  const mappings = specs.map(parseMapping);
  const { url } = await client.call("RuntimeService", "PortForward", { pod_sandbox_id: pod, port: mappings.map((m) => m.remote) });
  // One streaming connection carries every forwarded connection, as with kubectl.
  const pf = await PortForwardClient.dial(url);
  const servers: net.Server[] = [];
  for (const m of mappings) {
    const server = net.createServer((sock) => {
      pf.forward(sock, m.remote, (msg) => process.stderr.write(`crib ctl port-forward: to ${m.remote}: ${msg.trim()}\n`)).catch((err: unknown) => {
        process.stderr.write(`crib ctl port-forward: to ${m.remote}: ${(err as Error).message}\n`);
        sock.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(m.local, "127.0.0.1", () => resolve());
    });
    servers.push(server);
    out(`Forwarding from 127.0.0.1:${(server.address() as net.AddressInfo).port} -> ${m.remote}\n`);
  }
  let stopping = false;
  const code = await new Promise<number>((resolve) => {
    const stop = () => {
      stopping = true;
      resolve(0);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    pf.conn.onClose(() => {
      if (stopping) return;
      process.stderr.write("crib ctl port-forward: the streaming connection closed\n");
      resolve(1);
    });
  });
  for (const s of servers) s.close();
  pf.close();
  return code;
}
