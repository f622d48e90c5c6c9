// CRI configs stored as their protobuf encoding, decoded back to the same
// shape the gRPC handlers see.
import { criType, decodeMessage, encodeMessage } from "../protocol/proto.ts";
import type { ContainerConfig, PodSandboxConfig } from "../protocol/types.ts";

const POD_CONFIG = "runtime.v1.PodSandboxConfig";
const CONTAINER_CONFIG = "runtime.v1.ContainerConfig";

export const encodePodConfig = (c: PodSandboxConfig): Buffer => encodeMessage(criType(POD_CONFIG), c);
export const decodePodConfig = (b: Uint8Array): PodSandboxConfig => decodeMessage<PodSandboxConfig>(criType(POD_CONFIG), b);
export const encodeContainerConfig = (c: ContainerConfig): Buffer => encodeMessage(criType(CONTAINER_CONFIG), c);
export const decodeContainerConfig = (b: Uint8Array): ContainerConfig => decodeMessage<ContainerConfig>(criType(CONTAINER_CONFIG), b);
