// ContainerRecord -> CRI Container / ContainerStatus.
import type { CriContext } from "./context.ts";
import type { ContainerRecord } from "../container/container_store.ts";
import type { Container, ContainerStatus, Out } from "../protocol/types.ts";

/** The digested reference when the image has one (as the kubelet shows imageID), else the image id. */
function imageRef(d: CriContext, c: ContainerRecord): string {
  const image = d.images.find(c.imageId);
  return image?.names.find((n) => n.includes("@")) ?? c.imageId;
}

export function toCriContainer(d: CriContext, c: ContainerRecord): Out<Container> {
  return {
    id: c.id,
    pod_sandbox_id: c.podId,
    metadata: c.config.metadata,
    image: { image: c.imageRef, annotations: c.config.image?.annotations ?? {} },
    image_ref: imageRef(d, c),
    state: c.state as Container["state"],
    created_at: c.createdNs,
    labels: c.config.labels,
    annotations: c.config.annotations,
    image_id: c.imageId,
  };
}

export function toCriContainerStatus(d: CriContext, c: ContainerRecord): Out<ContainerStatus> {
  return {
    id: c.id,
    metadata: c.config.metadata,
    state: c.state as ContainerStatus["state"],
    created_at: c.createdNs,
    started_at: c.startedNs,
    finished_at: c.finishedNs,
    exit_code: c.exitCode,
    image: { image: c.imageRef, annotations: c.config.image?.annotations ?? {} },
    image_ref: imageRef(d, c),
    image_id: c.imageId,
    reason: c.reason,
    message: c.message,
    labels: c.config.labels,
    annotations: c.config.annotations,
    mounts: c.config.mounts,
    log_path: c.logPath,
    resources: c.config.linux?.resources ? { linux: c.config.linux.resources } : null,
    stop_signal: c.config.stop_signal,
    user: c.user ? { linux: { uid: BigInt(c.user.uid), gid: BigInt(c.user.gid), supplemental_groups: c.user.groups.map(BigInt) } } : null,
  };
}
