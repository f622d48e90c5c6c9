// The definitions (proto/api.proto, the source of the generated codecs; protocol_generated.test.ts
// checks they are current) must match the CRI runtime.v1 wire contract (cri-api
// v0.36): service methods, stream markers and field numbers the kubelet relies on.
import { describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { criRoot } from "../helpers/protobuf_reference.ts";

const root = criRoot();

function type(name: string): protobuf.Type {
  return root.lookupType(`runtime.v1.${name}`);
}

function fieldId(message: string, field: string): number {
  const f = type(message).fields[field];
  if (!f) throw new Error(`runtime.v1.${message} has no field ${field}`);
  return f.id;
}

function enumValue(name: string, value: string): number | undefined {
  return root.lookupEnum(`runtime.v1.${name}`).values[value];
}

interface Rpc {
  request: string;
  response: string;
  stream: boolean;
}

function methods(service: string): Record<string, Rpc> {
  const out: Record<string, Rpc> = {};
  for (const m of root.lookupService(`runtime.v1.${service}`).methodsArray) {
    out[m.name] = {
      request: m.resolvedRequestType?.name ?? "",
      response: m.resolvedResponseType?.name ?? "",
      stream: Boolean(m.responseStream),
    };
    expect(Boolean(m.requestStream)).toBe(false);
  }
  return out;
}

const unary = (request: string, response: string): Rpc => ({ request, response, stream: false });
const streamed = (request: string, response: string): Rpc => ({ request, response, stream: true });

describe("proto/api.proto", () => {
  test("package is runtime.v1", () => {
    expect(root.lookup("runtime.v1")).toBeInstanceOf(protobuf.Namespace);
    expect(root.lookupService("runtime.v1.RuntimeService")).toBeInstanceOf(protobuf.Service);
  });

  test("RuntimeService has exactly the v0.36 RPCs", () => {
    expect(methods("RuntimeService")).toEqual({
      Version: unary("VersionRequest", "VersionResponse"),
      RunPodSandbox: unary("RunPodSandboxRequest", "RunPodSandboxResponse"),
      StopPodSandbox: unary("StopPodSandboxRequest", "StopPodSandboxResponse"),
      RemovePodSandbox: unary("RemovePodSandboxRequest", "RemovePodSandboxResponse"),
      PodSandboxStatus: unary("PodSandboxStatusRequest", "PodSandboxStatusResponse"),
      ListPodSandbox: unary("ListPodSandboxRequest", "ListPodSandboxResponse"),
      StreamPodSandboxes: streamed("StreamPodSandboxesRequest", "StreamPodSandboxesResponse"),
      CreateContainer: unary("CreateContainerRequest", "CreateContainerResponse"),
      StartContainer: unary("StartContainerRequest", "StartContainerResponse"),
      StopContainer: unary("StopContainerRequest", "StopContainerResponse"),
      RemoveContainer: unary("RemoveContainerRequest", "RemoveContainerResponse"),
      ListContainers: unary("ListContainersRequest", "ListContainersResponse"),
      StreamContainers: streamed("StreamContainersRequest", "StreamContainersResponse"),
      ContainerStatus: unary("ContainerStatusRequest", "ContainerStatusResponse"),
      UpdateContainerResources: unary("UpdateContainerResourcesRequest", "UpdateContainerResourcesResponse"),
      ReopenContainerLog: unary("ReopenContainerLogRequest", "ReopenContainerLogResponse"),
      ExecSync: unary("ExecSyncRequest", "ExecSyncResponse"),
      Exec: unary("ExecRequest", "ExecResponse"),
      Attach: unary("AttachRequest", "AttachResponse"),
      PortForward: unary("PortForwardRequest", "PortForwardResponse"),
      ContainerStats: unary("ContainerStatsRequest", "ContainerStatsResponse"),
      ListContainerStats: unary("ListContainerStatsRequest", "ListContainerStatsResponse"),
      StreamContainerStats: streamed("StreamContainerStatsRequest", "StreamContainerStatsResponse"),
      PodSandboxStats: unary("PodSandboxStatsRequest", "PodSandboxStatsResponse"),
      ListPodSandboxStats: unary("ListPodSandboxStatsRequest", "ListPodSandboxStatsResponse"),
      StreamPodSandboxStats: streamed("StreamPodSandboxStatsRequest", "StreamPodSandboxStatsResponse"),
      UpdateRuntimeConfig: unary("UpdateRuntimeConfigRequest", "UpdateRuntimeConfigResponse"),
      Status: unary("StatusRequest", "StatusResponse"),
      CheckpointContainer: unary("CheckpointContainerRequest", "CheckpointContainerResponse"),
      GetContainerEvents: streamed("GetEventsRequest", "ContainerEventResponse"),
      ListMetricDescriptors: unary("ListMetricDescriptorsRequest", "ListMetricDescriptorsResponse"),
      ListPodSandboxMetrics: unary("ListPodSandboxMetricsRequest", "ListPodSandboxMetricsResponse"),
      StreamPodSandboxMetrics: streamed("StreamPodSandboxMetricsRequest", "StreamPodSandboxMetricsResponse"),
      RuntimeConfig: unary("RuntimeConfigRequest", "RuntimeConfigResponse"),
      UpdatePodSandboxResources: unary("UpdatePodSandboxResourcesRequest", "UpdatePodSandboxResourcesResponse"),
    });
  });

  test("ImageService has exactly the v0.36 RPCs", () => {
    expect(methods("ImageService")).toEqual({
      ListImages: unary("ListImagesRequest", "ListImagesResponse"),
      StreamImages: streamed("StreamImagesRequest", "StreamImagesResponse"),
      ImageStatus: unary("ImageStatusRequest", "ImageStatusResponse"),
      PullImage: unary("PullImageRequest", "PullImageResponse"),
      RemoveImage: unary("RemoveImageRequest", "RemoveImageResponse"),
      ImageFsInfo: unary("ImageFsInfoRequest", "ImageFsInfoResponse"),
    });
  });

  test("spot-checked field numbers match upstream", () => {
    expect(fieldId("PullImageRequest", "image")).toBe(1);
    expect(fieldId("PullImageRequest", "auth")).toBe(2);
    expect(fieldId("PullImageRequest", "sandbox_config")).toBe(3);
    expect(fieldId("ContainerConfig", "log_path")).toBe(11);
    expect(fieldId("ContainerConfig", "CDI_devices")).toBe(17);
    expect(fieldId("ContainerConfig", "stop_signal")).toBe(18);
    expect(fieldId("ContainerStatus", "stop_signal")).toBe(19);
    expect(fieldId("LinuxContainerSecurityContext", "seccomp")).toBe(15);
    expect(fieldId("LinuxContainerSecurityContext", "run_as_group")).toBe(12);
    expect(fieldId("LinuxContainerSecurityContext", "supplemental_groups_policy")).toBe(17);
    expect(fieldId("LinuxSandboxSecurityContext", "run_as_group")).toBe(8);
    expect(fieldId("ImageSpec", "user_specified_image")).toBe(18);
    expect(fieldId("ImageSpec", "runtime_handler")).toBe(19);
    expect(fieldId("ImageSpec", "image_ref")).toBe(20);
    expect(fieldId("Mount", "uidMappings")).toBe(6);
    expect(fieldId("Mount", "image_sub_path")).toBe(10);
    expect(fieldId("Image", "pinned")).toBe(8);
    expect(fieldId("RuntimeHandlerFeatures", "user_namespaces")).toBe(2);
    expect(fieldId("PsiStats", "Some")).toBe(2);
    expect(fieldId("StreamPodSandboxesResponse", "pod_sandboxes")).toBe(1);
    expect(type("StreamPodSandboxesResponse").fields["pod_sandboxes"]?.repeated).toBe(true);
    expect(fieldId("UpdatePodSandboxResourcesRequest", "resources")).toBe(3);
  });

  test("spot-checked enum values match upstream", () => {
    expect(enumValue("NamespaceMode", "TARGET")).toBe(3);
    expect(enumValue("Signal", "SIGTERM")).toBe(23);
    expect(enumValue("Signal", "SIGRTMAX")).toBe(65);
    expect(enumValue("CgroupDriver", "CGROUPFS")).toBe(1);
    expect(enumValue("SecurityProfile.ProfileType", "Localhost")).toBe(2);
    expect(enumValue("ContainerEventType", "CONTAINER_DELETED_EVENT")).toBe(3);
  });

  test("a PullImageRequest round-trips on the wire", () => {
    const t = type("PullImageRequest");
    const bytes = t.encode(t.fromObject({ image: { image: "busybox:latest" }, auth: { username: "u" } })).finish();
    const back = t.toObject(t.decode(bytes));
    expect(back).toEqual({ image: { image: "busybox:latest" }, auth: { username: "u" } });
  });
});
