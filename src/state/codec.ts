// CRI configs stored as their protobuf encoding, decoded back to the same
// shape the gRPC handlers see.
import { codecFor } from "../protocol/proto.ts";
import type { ContainerConfig, PodSandboxConfig } from "../protocol/types.ts";

const podConfig = codecFor<PodSandboxConfig>("runtime.v1.PodSandboxConfig");
const containerConfig = codecFor<ContainerConfig>("runtime.v1.ContainerConfig");

export const encodePodConfig = (c: PodSandboxConfig): Buffer => podConfig.encode(c);
export const decodePodConfig = (b: Uint8Array): PodSandboxConfig => podConfig.decode(b);
export const encodeContainerConfig = (c: ContainerConfig): Buffer => containerConfig.encode(c);
export const decodeContainerConfig = (b: Uint8Array): ContainerConfig => containerConfig.decode(b);
