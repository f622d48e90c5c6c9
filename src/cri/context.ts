// What every CRI handler receives: config and the components it reaches. Declared
// here, beside the handlers that use it; the daemon builds one at start-up
// (src/cli/serve.ts) and satisfies it, so nothing in cri/ imports daemon code.
import type { Config } from "../config/config.ts";
import type { ContainerService } from "../container/container_service.ts";
import type { ImageService } from "../image/image_service.ts";
import type { CniManager } from "../pod/cni/manager.ts";
import type { PodService } from "../pod/pod_service.ts";
import type { StatsCollector } from "../stats/stats_collector.ts";
import type { StreamingService } from "../stream/service.ts";

export interface CriContext {
  config: Config;
  /** Where the config came from (a file path, or "embedded defaults"). */
  configSource: string;
  images: ImageService;
  pods: PodService;
  /** Pod networking (CNI); UpdateRuntimeConfig hands it the pod CIDR. */
  cni: CniManager;
  containers: ContainerService;
  /** Resource usage of containers and pods (stats and metrics RPCs). */
  stats: StatsCollector;
  /** Exec, Attach and PortForward URLs and the server behind them. */
  streaming: StreamingService;
}
