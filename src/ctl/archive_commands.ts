// crib ctl load / save / pin / unpin: images on nodes without a registry.
// The daemon reads and writes the archive files itself (ctl runs on the node),
// so paths are made absolute here, relative to ctl's working directory.
import { resolve } from "node:path";
import { flag, parseArgs, UsageError } from "../cli/args.ts";
import type { LoadedImage } from "../protocol/types.ts";
import type { CtlContext } from "./context.ts";
import { humanBytes, shortId } from "./format.ts";

/** Loading a multi-GB archive unpacks every layer: allow it hours, like a pull. */
const ARCHIVE_TIMEOUT_MS = 6 * 3600 * 1000;

function describe(i: LoadedImage): string {
  const names = [...i.repo_tags, ...(i.repo_tags.length === 0 ? i.repo_digests : [])];
  return `${names.join(", ") || "<no name>"} (${shortId(i.id)}, ${humanBytes(Number(i.size))}${i.pinned ? ", pinned" : ""})`;
}

export async function ctlLoad({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "input", short: "i", help: "the archive (or give it as the argument)" }]);
  const file = flag(args, "input") ?? args.positionals[0];
  if (!file || args.positionals.length > (flag(args, "input") ? 0 : 1)) throw new UsageError("usage: crib ctl load FILE   (an OCI layout or docker save tar; .gz/.zst fine)");
  const res = await client.call("Crib", "LoadImages", { path: resolve(file) }, { timeoutMs: ARCHIVE_TIMEOUT_MS });
  for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const i of res.images) out(`Loaded image: ${describe(i)}\n`);
  return 0;
}

export async function ctlSave({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "output", short: "o", help: "the archive to write (an OCI layout tar with a docker manifest.json)" }]);
  const file = flag(args, "output");
  if (!file || args.positionals.length === 0) throw new UsageError("usage: crib ctl save -o FILE IMAGE [IMAGE...]");
  if (file === "-") throw new UsageError("crib ctl save writes a file on the node (the daemon writes it): give -o FILE, not -");
  const res = await client.call("Crib", "SaveImages", { images: args.positionals, path: resolve(file) }, { timeoutMs: ARCHIVE_TIMEOUT_MS });
  for (const i of res.images) out(`Saved image: ${describe(i)}\n`);
  out(`${resolve(file)}: ${humanBytes(Number(res.bytes))}\n`);
  return 0;
}

async function pin(ctx: CtlContext, pinned: boolean): Promise<number> {
  const args = parseArgs(ctx.argv, []);
  if (args.positionals.length === 0) throw new UsageError(`usage: crib ctl ${pinned ? "pin" : "unpin"} IMAGE [IMAGE...]`);
  for (const image of args.positionals) {
    const res = await ctx.client.call("Crib", "PinImage", { image, pinned });
    ctx.out(`${pinned ? "Pinned" : "Unpinned"}: ${res.image ? describe(res.image) : image}\n`);
  }
  return 0;
}

export const ctlPin = (ctx: CtlContext) => pin(ctx, true);
export const ctlUnpin = (ctx: CtlContext) => pin(ctx, false);
