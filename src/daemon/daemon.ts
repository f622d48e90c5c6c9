// The daemon's context: config and the components every CRI handler reaches.
// Components are added here as their issues land (images, pods, containers...).
import type { Config } from "../config/config.ts";

export interface Daemon {
  config: Config;
  /** Where the config came from (a file path, or "embedded defaults"). */
  configSource: string;
}
