// What each `crib ctl` command receives (ctl.ts builds it, the command files use it).
import type { CriClient } from "./client.ts";

export interface CtlContext {
  client: CriClient;
  argv: string[];
  out: (text: string) => void;
}
