// Kubelet-shaped CRI requests for tests.
import { rejection } from "./reject.ts";
import { tempDir } from "./tmp.ts";
import { CriError, type CriClient } from "../../src/ctl/client.ts";
import type { ContainerConfig, Out, PodSandboxConfig } from "../../src/protocol/types.ts";

let seq = 0;

export function podConfig(name = `pod${++seq}`, extra: Out<PodSandboxConfig> = {}): Out<PodSandboxConfig> {
  return {
    metadata: { name, namespace: "default", uid: `uid-${name}-${process.pid}`, attempt: 0 },
    hostname: name,
    log_directory: tempDir("crib-podlogs-"),
    labels: { app: name },
    linux: { cgroup_parent: "", security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
    ...extra,
  };
}

export function containerConfig(name: string, image: string, command: string[], extra: Out<ContainerConfig> = {}): Out<ContainerConfig> {
  return {
    metadata: { name, attempt: 0 },
    image: { image },
    command,
    log_path: `${name}.log`,
    labels: { c: name },
    ...extra,
  };
}

/** Run a pod, create and start one container in it; returns both ids. */
export async function runContainer(client: CriClient, pod: Out<PodSandboxConfig>, c: Out<ContainerConfig>): Promise<{ podId: string; id: string }> {
  const { pod_sandbox_id: podId } = await client.call("RuntimeService", "RunPodSandbox", { config: pod });
  const { container_id: id } = await client.call("RuntimeService", "CreateContainer", { pod_sandbox_id: podId, config: c, sandbox_config: pod });
  await client.call("RuntimeService", "StartContainer", { container_id: id });
  return { podId, id };
}

/** Poll ContainerStatus until `pred` holds (or fail after `timeoutMs`). */
export async function waitStatus<T>(client: CriClient, id: string, pred: (s: NonNullable<Awaited<ReturnType<typeof statusOf>>>) => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await statusOf(client, id);
    const v = s && pred(s);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`container ${id}: condition not met within ${timeoutMs} ms; last status ${JSON.stringify(s, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x))}`);
    await Bun.sleep(50);
  }
}

export async function statusOf(client: CriClient, id: string) {
  return (await client.call("RuntimeService", "ContainerStatus", { container_id: id, verbose: false })).status;
}

/** The CRI log lines of a file: [stream, tag, content]. */
export async function logLines(path: string): Promise<[string, string, string][]> {
  const text = await Bun.file(path).text().catch(() => "");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const m = /^(\S+) (stdout|stderr) (F|P) (.*)$/.exec(l);
      if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(l)}`);
      return [m[2]!, m[3]!, m[4]!];
    });
}

/** The CriError a call fails with (the test fails if it succeeds). */
export const criError = (p: Promise<unknown>): Promise<CriError> => rejection(p, CriError);
