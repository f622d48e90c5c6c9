// What a `crib ctl` command runs with: its own file, so the command files and the
// dispatcher (ctl.ts) both import it without importing each other.
import type { ParsedArgs } from "../cli/args.ts";
import type { CriClient } from "./client.ts";

export interface CtlContext {
  client: CriClient;
  /** The command's arguments, parsed against its spec's flags. */
  args: ParsedArgs;
  out: (text: string) => void;
}
