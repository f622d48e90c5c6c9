// `crib config`: the effective config as YAML.
import { stringify } from "yaml";
import { loadConfig } from "../config/config.ts";
import { flag, parseArgs } from "./args.ts";
import { SERVE_FLAGS } from "./serve_flags.ts";

export async function printConfig(argv: string[]): Promise<number> {
  const { config, source } = loadConfig(flag(parseArgs(argv, SERVE_FLAGS), "config"));
  process.stdout.write(`# effective crib config (from ${source})\n${stringify(config)}`);
  return 0;
}
