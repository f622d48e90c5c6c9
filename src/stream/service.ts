// Exec, Attach and PortForward: validate the request against the container or pod,
// and hand out a single-use URL on the streaming server where the session runs.
//
// The server (HTTP, SPDY, WebSocket) is loaded and starts listening on the first
// request, not at start-up: many nodes never exec or attach, and it is ~1.5 MiB of
// resident memory and ~8 ms of start-up the daemon would otherwise pay for nothing.

import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../config/config.ts";
import { parseDuration } from "../config/schema.ts";
import { stateName, type ContainerService } from "../container/container_service.ts";
import { ContainerState, PodSandboxState, type AttachRequest, type ExecRequest, type PortForwardRequest } from "../protocol/types.ts";
import { errorMessage, failedPrecondition, invalidArgument, unavailable } from "../errors.ts";
import type { PodService } from "../pod/pod_service.ts";
import type { CommandOptions } from "./command_channel.ts";
import { dialPodPort } from "./netns_dial.ts";
import type { StreamingServer, StreamingServerOptions, StreamRequest } from "./server.ts";

export class StreamingService {
  private readonly options: StreamingServerOptions;
  /** The listening server, from the first request on; unset again if listening failed. */
  private server: Promise<StreamingServer> | undefined;
  private readonly workDir: string;

  constructor(
    config: Config,
    private readonly containers: ContainerService,
    private readonly pods: PodService,
    /** The monitor's socket (an attach opens a connection of its own). */
    private readonly monitorSocket: string,
  ) {
    this.options = {
      address: config.streaming.address,
      port: config.streaming.port,
      tokenTtlMs: parseDuration(config.streaming.tokenTTL),
      idleTimeoutMs: parseDuration(config.streaming.idleTimeout),
    };
    this.workDir = join(config.state, "exec");
  }

  /** Stop listening (if it ever started) and drop every streaming connection. */
  async stop(): Promise<void> {
    const server = await this.server?.catch(() => undefined);
    await server?.stop();
  }

  /** A single-use URL for `req` on the server, which listens from the first call on. */
  private async url(req: StreamRequest): Promise<string> {
    this.server ??= this.listen().catch((e: unknown) => {
      this.server = undefined; // the next request tries again
      throw unavailable(`the streaming server cannot listen on ${this.options.address}:${this.options.port}: ${errorMessage(e)}`);
    });
    return (await this.server).url(req);
  }

  private async listen(): Promise<StreamingServer> {
    const { StreamingServer } = await import("./server.ts");
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    const server = new StreamingServer(this.options);
    await server.start();
    return server;
  }

  exec(req: ExecRequest): Promise<string> {
    if (!req.container_id) throw invalidArgument("Exec: container_id is empty");
    if (req.cmd.length === 0) throw invalidArgument("Exec: cmd is empty");
    const nul = req.cmd.findIndex((a) => a.includes("\0"));
    if (nul >= 0) throw invalidArgument(`Exec: cmd[${nul}] contains a NUL byte`);
    const options = commandOptions("Exec", req);
    const c = this.runningContainer("Exec", req.container_id);
    const runtime = this.containers.runtimeFor(this.pods.get(c.podId));
    const bundle = dirname(this.containers.fs.paths(c.id).rootfs);
    return this.url({ kind: "exec", options, target: { runtime, containerId: c.id, cmd: req.cmd, bundle, workDir: this.workDir } });
  }

  attach(req: AttachRequest): Promise<string> {
    if (!req.container_id) throw invalidArgument("Attach: container_id is empty");
    const options = commandOptions("Attach", req);
    const c = this.runningContainer("Attach", req.container_id);
    if (options.stdin && !c.config.stdin) {
      throw failedPrecondition(`Attach: container ${c.id} was created without stdin, so there is nothing to attach stdin to (attach without -i, or create the container with stdin: true)`);
    }
    return this.url({ kind: "attach", options, target: { containerId: c.id, monitorSocket: this.monitorSocket, stdinOnce: c.config.stdin_once } });
  }

  portForward(req: PortForwardRequest): Promise<string> {
    if (!req.pod_sandbox_id) throw invalidArgument("PortForward: pod_sandbox_id is empty");
    for (const p of req.port) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalidArgument(`PortForward: port ${p} is not in 1..65535`);
    }
    const pod = this.pods.get(req.pod_sandbox_id);
    if (pod.state !== PodSandboxState.SANDBOX_READY) throw failedPrecondition(`PortForward: pod sandbox ${pod.id} is not ready`);
    const netns = pod.namespaces.net;
    return this.url({ kind: "portforward", target: { podId: pod.id, dial: (port) => dialPodPort(netns, port) } });
  }

  private runningContainer(rpc: string, id: string) {
    const c = this.containers.get(id);
    if (c.state !== ContainerState.CONTAINER_RUNNING) throw failedPrecondition(`${rpc}: container ${c.id} is ${stateName(c.state)}, not running`);
    return c;
  }
}

/** The kubelet's rules: some stream; a TTY has no separate stderr. */
function commandOptions(rpc: string, req: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): CommandOptions {
  if (req.tty && req.stderr) throw invalidArgument(`${rpc}: tty and stderr cannot both be true (a terminal has one output stream)`);
  if (!req.stdin && !req.stdout && !req.stderr) throw invalidArgument(`${rpc}: one of stdin, stdout or stderr must be true`);
  return { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, tty: req.tty };
}
