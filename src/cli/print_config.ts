// `crib config`: the effective config as YAML.
import { stringify } from "yaml";
import { loadConfig } from "../config/config.ts";
import { flag, UsageError } from "./args.ts";
import { parseCommand } from "./command.ts";
import { CONFIG } from "./faces.ts";

export async function printConfig(argv: string[]): Promise<number> {
  const args = parseCommand(argv, CONFIG);
  if (args.positionals.length > 0) throw new UsageError(`config takes no arguments (got ${args.positionals.join(" ")})`);
  const { config, source } = loadConfig(flag(args, "config"));
  process.stdout.write(`# effective crib config (from ${source})\n${stringify(config)}`);
  return 0;
}
