// crib ctl load / save / pin / unpin: images on nodes without a registry.
// The daemon reads and writes the archive files itself (ctl runs on the node),
// so paths are made absolute here, relative to ctl's working directory.
import { resolve } from "node:path";
import { flag, UsageError } from "../cli/args.ts";
import type { LoadedImage } from "../protocol/types.ts";
import type { CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";
import { humanBytes, shortId } from "./format.ts";

/** Loading a multi-GB archive unpacks every layer: allow it hours, like a pull. */
const ARCHIVE_TIMEOUT_MS = 6 * 3600 * 1000;

function describe(i: LoadedImage): string {
  const names = [...i.repo_tags, ...(i.repo_tags.length === 0 ? i.repo_digests : [])];
  return `${names.join(", ") || "<no name>"} (${shortId(i.id)}, ${humanBytes(Number(i.size))}${i.pinned ? ", pinned" : ""})`;
}

export const load: CtlCommand = {
  name: "load",
  summary: "import images from an archive (OCI layout or docker save tar, .gz/.zst)",
  args: "[-i] FILE",
  flags: [{ name: "input", short: "i", value: "FILE", complete: "file", help: "the archive (or give it as the argument)" }],
  operands: ["file"],
  examples: ["crib ctl load images.tar.zst", "docker save app:1 -o app.tar && crib ctl load app.tar"],
  run: runLoad,
};

async function runLoad({ client, args, out }: CtlContext): Promise<number> {
  const file = flag(args, "input") ?? args.positionals[0];
  if (!file || args.positionals.length > (flag(args, "input") ? 0 : 1)) throw new UsageError("give one FILE: an OCI layout or docker save tar (.gz/.zst fine)");
  const res = await client.call("Crib", "LoadImages", { path: resolve(file) }, { timeoutMs: ARCHIVE_TIMEOUT_MS });
  for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const i of res.images) out(`Loaded image: ${describe(i)}\n`);
  return 0;
}

export const save: CtlCommand = {
  name: "save",
  summary: "write images to an archive (an OCI layout tar with a docker manifest.json)",
  args: "-o FILE IMAGE...",
  flags: [{ name: "output", short: "o", value: "FILE", complete: "file", help: "the archive to write, on the node (the daemon writes it)" }],
  operands: ["image"],
  examples: ["crib ctl save -o images.tar busybox:latest registry.k8s.io/pause:3.10"],
  run: runSave,
};

async function runSave({ client, args, out }: CtlContext): Promise<number> {
  const file = flag(args, "output");
  if (!file) throw new UsageError("where to? give -o FILE");
  if (args.positionals.length === 0) throw new UsageError("which images? give IMAGE...");
  if (file === "-") throw new UsageError("crib ctl save writes a file on the node (the daemon writes it): give -o FILE, not -");
  const res = await client.call("Crib", "SaveImages", { images: args.positionals, path: resolve(file) }, { timeoutMs: ARCHIVE_TIMEOUT_MS });
  for (const i of res.images) out(`Saved image: ${describe(i)}\n`);
  out(`${resolve(file)}: ${humanBytes(Number(res.bytes))}\n`);
  return 0;
}

async function setPinned(ctx: CtlContext, pinned: boolean): Promise<number> {
  if (ctx.args.positionals.length === 0) throw new UsageError("which images? give IMAGE...");
  for (const image of ctx.args.positionals) {
    const res = await ctx.client.call("Crib", "PinImage", { image, pinned });
    ctx.out(`${pinned ? "Pinned" : "Unpinned"}: ${res.image ? describe(res.image) : image}\n`);
  }
  return 0;
}

export const pin: CtlCommand = {
  name: "pin",
  summary: "pin images: the kubelet's image garbage collection keeps them",
  args: "IMAGE...",
  flags: [],
  operands: ["image"],
  examples: ["crib ctl pin registry.k8s.io/pause:3.10"],
  run: (ctx) => setPinned(ctx, true),
};

export const unpin: CtlCommand = {
  name: "unpin",
  summary: "unpin images",
  args: "IMAGE...",
  flags: [],
  operands: ["image"],
  examples: ["crib ctl unpin registry.k8s.io/pause:3.10"],
  run: (ctx) => setPinned(ctx, false),
};
