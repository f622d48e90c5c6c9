// The table of implemented RPCs. Each handler lives in its own file, named
// object_verb as in CRI-O and containerd.
import { containerCreate } from "./container_create.ts";
import { containerEvents } from "./container_events.ts";
import { containerAttach } from "./container_attach.ts";
import { containerExec } from "./container_exec.ts";
import { containerExecSync } from "./container_exec_sync.ts";
import { containerList, containerStream } from "./container_list.ts";
import { containerRemove } from "./container_remove.ts";
import { containerReopenLog } from "./container_reopen_log.ts";
import { containerStart } from "./container_start.ts";
import { containerStats, containerStatsList, containerStatsStream } from "./container_stats.ts";
import { containerStatus } from "./container_status.ts";
import { containerStop } from "./container_stop.ts";
import { containerUpdateResources } from "./container_update_resources.ts";
import { cribLoadImages } from "./crib_load_images.ts";
import { cribPinImage } from "./crib_pin_image.ts";
import { cribSaveImages } from "./crib_save_images.ts";
import { cribStoreUsage } from "./crib_store_usage.ts";
import { cribVerifyImage } from "./crib_verify_image.ts";
import { cribWatchPull } from "./crib_watch_pull.ts";
import { imageFsInfo } from "./image_fs_info.ts";
import { imageList, imageStream } from "./image_list.ts";
import { imagePull } from "./image_pull.ts";
import { imageRemove } from "./image_remove.ts";
import { imageStatus } from "./image_status.ts";
import type { CribHandlers, ImageHandlers, RuntimeHandlers } from "./rpc.ts";
import { runtimeConfig } from "./runtime_config.ts";
import { metricDescriptorsList, sandboxMetricsList, sandboxMetricsStream } from "./runtime_metrics.ts";
import { runtimeStatus } from "./runtime_status.ts";
import { runtimeUpdateConfig } from "./runtime_update_config.ts";
import { runtimeVersion } from "./runtime_version.ts";
import { sandboxList, sandboxStream } from "./sandbox_list.ts";
import { sandboxPortForward } from "./sandbox_port_forward.ts";
import { sandboxRemove } from "./sandbox_remove.ts";
import { sandboxRun } from "./sandbox_run.ts";
import { sandboxStats, sandboxStatsList, sandboxStatsStream } from "./sandbox_stats.ts";
import { sandboxStatus } from "./sandbox_status.ts";
import { sandboxStop } from "./sandbox_stop.ts";
import { sandboxUpdateResources } from "./sandbox_update_resources.ts";

export const runtimeHandlers: RuntimeHandlers = {
  Version: runtimeVersion,
  Status: runtimeStatus,
  RuntimeConfig: runtimeConfig,
  UpdateRuntimeConfig: runtimeUpdateConfig,
  RunPodSandbox: sandboxRun,
  StopPodSandbox: sandboxStop,
  UpdatePodSandboxResources: sandboxUpdateResources,
  RemovePodSandbox: sandboxRemove,
  PodSandboxStatus: sandboxStatus,
  ListPodSandbox: sandboxList,
  StreamPodSandboxes: sandboxStream,
  CreateContainer: containerCreate,
  StartContainer: containerStart,
  StopContainer: containerStop,
  RemoveContainer: containerRemove,
  ContainerStatus: containerStatus,
  ListContainers: containerList,
  StreamContainers: containerStream,
  ExecSync: containerExecSync,
  Exec: containerExec,
  Attach: containerAttach,
  PortForward: sandboxPortForward,
  UpdateContainerResources: containerUpdateResources,
  ReopenContainerLog: containerReopenLog,
  ContainerStats: containerStats,
  ListContainerStats: containerStatsList,
  StreamContainerStats: containerStatsStream,
  PodSandboxStats: sandboxStats,
  ListPodSandboxStats: sandboxStatsList,
  StreamPodSandboxStats: sandboxStatsStream,
  GetContainerEvents: containerEvents,
  ListMetricDescriptors: metricDescriptorsList,
  ListPodSandboxMetrics: sandboxMetricsList,
  StreamPodSandboxMetrics: sandboxMetricsStream,
};

export const imageHandlers: ImageHandlers = {
  PullImage: imagePull,
  ImageStatus: imageStatus,
  ListImages: imageList,
  StreamImages: imageStream,
  RemoveImage: imageRemove,
  ImageFsInfo: imageFsInfo,
};

/** crib's own service (crib.proto), for crib ctl. */
export const cribHandlers: CribHandlers = {
  WatchPull: cribWatchPull,
  StoreUsage: cribStoreUsage,
  LoadImages: cribLoadImages,
  SaveImages: cribSaveImages,
  PinImage: cribPinImage,
  VerifyImage: cribVerifyImage,
};
