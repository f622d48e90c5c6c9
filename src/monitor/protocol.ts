// The daemon <-> monitor protocol: newline-delimited JSON over DIR/monitor.sock.
//
//   request   { id: number, op: string, ...args }
//   response  { id, ok: true, result } | { id, ok: false, error: { kind, message } }
//   event     { event: "exit", container, exit }   (to connections that sent {op:"subscribe"})
//             { event: "output", container, stream, data } and { event: "outputEnd", container }
//               (to a connection that sent {op:"attach"}: a copy of the container's output)
//
// Byte payloads (exec output, attach output, stdin) travel as base64 strings.

import type { ErrorKind } from "../errors.ts";

/** The OCI runtime binary and its state root (`runc --root`). */
export interface RuntimeRef {
  path: string;
  root: string;
  /** Pass `--systemd-cgroup` (cgroupsPath is "slice:prefix:name"). */
  systemdCgroup?: boolean;
}

export interface CreateRequest {
  id: string;
  bundle: string;
  runtime: RuntimeRef;
  /** The CRI log file; "" for none (the output is still read, and copied to attaches). */
  logPath: string;
  stdin: boolean;
  stdinOnce: boolean;
  tty: boolean;
}

export interface ExitInfo {
  exitCode: number;
  /** "SIGKILL" when a signal ended the init. */
  signal?: string;
  /** Nanoseconds since the epoch, as a decimal string. */
  exitedAtNs: string;
  /** "Completed", "Error", "OOMKilled" or "Unknown". */
  reason: string;
  message?: string;
}

export type ContainerStatus = "created" | "running" | "exited" | "unknown";

export interface ContainerState {
  id: string;
  status: ContainerStatus;
  pid: number;
  createdAtNs: string;
  startedAtNs?: string;
  exit?: ExitInfo;
}

export interface ExecRequest {
  id: string;
  args: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  /** 0 = no timeout. */
  timeoutMs: number;
  /** Cap per stream; CRI-O and dockershim use 16 MiB. */
  maxOutputBytes: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  timedOut: boolean;
  truncated: boolean;
}

/**
 * ExecResult on the wire: the response line carries `binary` (stdoutBytes + the
 * stderr length) and the output follows the line as raw bytes, stdout then stderr.
 * Base64 inside the JSON line cost ~6x a 16 MiB answer in memory on both sides.
 */
export interface WireExecResult {
  exitCode: number;
  stdoutBytes: number;
  timedOut: boolean;
  truncated: boolean;
}

export interface MonitorInfo {
  pid: number;
  version: string;
  startedAtNs: string;
  /** 0 for a fresh start; +1 for every upgrade by execve. */
  generation: number;
  containers: number;
}

export type Request =
  | { id: number; op: "create"; req: CreateRequest }
  | { id: number; op: "start"; container: string }
  | { id: number; op: "kill"; container: string; signal: string; all: boolean }
  | { id: number; op: "state"; container: string }
  | { id: number; op: "list" }
  | { id: number; op: "exec"; req: ExecRequest }
  | { id: number; op: "reopenLog"; container: string }
  | { id: number; op: "closeStdin"; container: string }
  | { id: number; op: "attach"; container: string; stdout: boolean; stderr: boolean }
  | { id: number; op: "writeStdin"; container: string; binary: number }
  | { id: number; op: "resize"; container: string; width: number; height: number }
  | { id: number; op: "delete"; container: string }
  | { id: number; op: "subscribe" }
  | { id: number; op: "info" }
  | { id: number; op: "upgrade"; command: string[] };

export type Op = Request["op"];

export interface WireError {
  kind: ErrorKind;
  message: string;
}

/** `binary`: that many raw bytes follow the response's line and belong to it. */
export type Response = { id: number; ok: true; result: unknown; binary?: number } | { id: number; ok: false; error: WireError };

export interface ExitEvent {
  event: "exit";
  container: string;
  exit: ExitInfo;
}

/** What an attach learns about the container it attached to. */
export interface AttachInfo {
  tty: boolean;
  /** The container was created with stdin (writeStdin works). */
  stdin: boolean;
  stdinOnce: boolean;
  /** Its output has ended already (it exited): no output events follow, only outputEnd. */
  ended: boolean;
}

/** A copy of output the container wrote (a TTY container has only stdout). */
export interface OutputEvent {
  event: "output";
  container: string;
  stream: "stdout" | "stderr";
  /** The output's length: the bytes follow the event's line, raw. */
  binary: number;
}

/** The container's output ended (it exited): the attach is over. */
export interface OutputEndEvent {
  event: "outputEnd";
  container: string;
}

/** A request line longer than this closes the connection (exec requests are small). */
export const MAX_REQUEST_BYTES = 1 << 20;

/** Paths inside the monitor's state dir. */
export function socketPath(stateDir: string): string {
  return `${stateDir}/monitor.sock`;
}
export function containerDir(stateDir: string, id: string): string {
  return `${stateDir}/monitor/${id}`;
}

// Container ids end up in paths and runc arguments: the characters runc accepts, no
// leading dot or dash, bounded length.
const ID_RE = /^[A-Za-z0-9_+][A-Za-z0-9_+.-]{0,127}$/;
export function isValidContainerId(id: unknown): id is string {
  return typeof id === "string" && ID_RE.test(id);
}
