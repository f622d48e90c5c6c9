// Layer chain IDs (OCI image spec): the first is the first diff ID; each next
// one is sha256 of "<parent chain ID> <diff ID>". A chain ID names a layer
// together with everything below it, so equal chains can share one unpack.
import { digestOf } from "./digest.ts";

export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) out.push(out.length === 0 ? d : digestOf(`${out[out.length - 1]} ${d}`));
  return out;
}
