// crib ctl pull / images / inspecti / rmi / store.
import { boolFlag, flag, UsageError } from "../cli/args.ts";
import type { PullProgress } from "../protocol/types.ts";
import { NO_TRUNC, OBJECT_OUTPUT, QUIET, TABLE_OUTPUT, type CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";
import { humanBytes, idCell, protoJson, shortId, structured, table, verboseInfo } from "./format.ts";

const PULL_TIMEOUT_MS = 6 * 3600 * 1000;

export const pull: CtlCommand = {
  name: "pull",
  summary: "pull an image, with live progress per layer",
  args: "[flags] IMAGE",
  flags: [
    { name: "creds", value: "USER[:PASSWORD]", help: "registry credentials" },
    { name: "auth", value: "BASE64", help: "registry credentials as base64 of user:password" },
    { name: "quiet", short: "q", boolean: true, help: "no progress; print only the image reference" },
  ],
  examples: ["crib ctl pull busybox:latest", "crib ctl pull --creds me:secret registry.example:5000/app:1.2"],
  run: runPull,
};

async function runPull({ client, args, out }: CtlContext): Promise<number> {
  const image = args.positionals[0];
  if (!image) throw new UsageError("which image? give IMAGE");
  if (args.positionals.length > 1) throw new UsageError(`pull takes one IMAGE (got ${args.positionals.join(" ")})`);
  const creds = flag(args, "creds");
  const [username, password] = creds ? [creds.split(":")[0]!, creds.split(":").slice(1).join(":")] : ["", ""];
  const quiet = boolFlag(args, "quiet");

  const watch = new AbortController();
  const view = new ProgressView(out, Boolean(process.stdout.isTTY));
  let last: PullProgress | undefined;
  const watching = quiet
    ? Promise.resolve()
    : client.stream("Crib", "WatchPull", { image }, (p) => {
        last = p;
        view.render(p);
      }, { signal: watch.signal }).catch(() => undefined); // progress is best effort; the pull's result is what counts
  const started = performance.now();
  try {
    const res = await client.call("ImageService", "PullImage", { image: { image }, auth: { username, password, auth: flag(args, "auth") ?? "" } }, { timeoutMs: PULL_TIMEOUT_MS });
    const seconds = (performance.now() - started) / 1000;
    if (quiet) {
      out(`${res.image_ref}\n`);
      return 0;
    }
    await Promise.race([watching, Bun.sleep(300)]);
    const bytes = last ? last.layers.reduce((a, l) => a + Number(l.size), 0) : 0;
    const fetched = last ? last.layers.filter((l) => l.phase !== "cached").reduce((a, l) => a + Number(l.size), 0) : 0;
    view.finish();
    out(`Image is up to date for ${res.image_ref}\n`);
    if (last) out(`${last.layers.length} layers, ${humanBytes(bytes)} (${humanBytes(fetched)} fetched) in ${seconds.toFixed(2)}s${fetched > 0 ? `, ${humanBytes(fetched / seconds)}/s` : ""}\n`);
    return 0;
  } finally {
    watch.abort();
  }
}

/** Per-layer progress: redrawn in place on a terminal, one line per change otherwise. */
class ProgressView {
  private drawn = 0;
  private verification = "";
  private readonly phases = new Map<string, string>();
  private readonly rates = new Map<string, { at: number; bytes: number; rate: number }>();

  constructor(private readonly out: (t: string) => void, private readonly tty: boolean) {}

  render(p: PullProgress): void {
    const now = performance.now();
    if (p.verification && p.verification !== this.verification) {
      this.verification = p.verification;
      this.out(`verify  ${p.verification}\n`);
      this.drawn = 0; // the line above moved the layer table down
    }
    const lines: string[] = [];
    for (const l of p.layers) {
      const size = Number(l.size);
      const got = Number(l.downloaded);
      const prev = this.rates.get(l.digest);
      const rate = prev && now > prev.at ? ((got - prev.bytes) * 1000) / (now - prev.at) : 0;
      this.rates.set(l.digest, { at: now, bytes: got, rate: rate > 0 ? rate : (prev?.rate ?? 0) });
      const pct = size > 0 ? Math.floor((got * 100) / size) : 100;
      const shown = this.rates.get(l.digest)!.rate;
      lines.push(`${shortId(l.digest)}  ${l.phase.padEnd(11)} ${humanBytes(got).padStart(8)} / ${humanBytes(size).padEnd(8)} ${String(pct).padStart(3)}%${l.phase === "downloading" && shown > 0 ? `  ${humanBytes(shown)}/s` : ""}`);
      if (!this.tty && this.phases.get(l.digest) !== l.phase) {
        this.phases.set(l.digest, l.phase);
        this.out(`${shortId(l.digest)}  ${l.phase}  ${humanBytes(size)}\n`);
      }
    }
    if (!this.tty) return;
    if (this.drawn > 0) this.out(`\x1b[${this.drawn}A`);
    this.out(lines.map((l) => `\x1b[2K${l}\n`).join(""));
    this.drawn = lines.length;
  }

  finish(): void {
    this.drawn = 0;
  }
}

export const images: CtlCommand = {
  name: "images",
  aliases: ["img"],
  summary: "list images",
  args: "[flags] [IMAGE]",
  flags: [QUIET, { name: "digests", boolean: true, help: "show digests" }, TABLE_OUTPUT, NO_TRUNC],
  operands: ["image"],
  examples: ["crib ctl images", "crib ctl images -o json busybox"],
  run: runImages,
};

async function runImages({ client, args, out }: CtlContext): Promise<number> {
  const filter = args.positionals[0];
  if (args.positionals.length > 1) throw new UsageError(`images takes at most one IMAGE filter (got ${args.positionals.join(" ")})`);
  const res = await client.call("ImageService", "ListImages", { filter: filter ? { image: { image: filter } } : null });
  const format = flag(args, "output") ?? "table";
  if (format !== "table") {
    out(structured(format, protoJson("runtime.v1.ListImagesResponse", res)));
    return 0;
  }
  if (boolFlag(args, "quiet")) {
    out(res.images.map((i) => i.id + "\n").join(""));
    return 0;
  }
  const rows: string[][] = [];
  for (const img of res.images) {
    const digest = img.repo_digests[0]?.split("@")[1] ?? "<none>";
    const tags = img.repo_tags.length > 0 ? img.repo_tags : img.repo_digests.map((d) => `${d.split("@")[0]}:<none>`);
    for (const t of tags.length > 0 ? tags : ["<none>:<none>"]) {
      const i = t.lastIndexOf(":");
      const row = [t.slice(0, i), t.slice(i + 1)];
      const noTrunc = boolFlag(args, "no-trunc");
      if (boolFlag(args, "digests")) row.push(idCell(digest, noTrunc));
      row.push(idCell(img.id, noTrunc), humanBytes(Number(img.size)));
      rows.push(row);
    }
  }
  const header = ["IMAGE", "TAG", ...(boolFlag(args, "digests") ? ["DIGEST"] : []), "IMAGE ID", "SIZE"];
  out(table(header, rows));
  return 0;
}

export const inspecti: CtlCommand = {
  name: "inspecti",
  summary: "image status, config and where it came from",
  args: "[flags] IMAGE...",
  flags: [OBJECT_OUTPUT],
  operands: ["image"],
  examples: ["crib ctl inspecti busybox:latest", "crib ctl inspecti -o yaml busybox"],
  run: runInspecti,
};

async function runInspecti({ client, args, out }: CtlContext): Promise<number> {
  if (args.positionals.length === 0) throw new UsageError("which image? give IMAGE...");
  let code = 0;
  for (const image of args.positionals) {
    const res = await client.call("ImageService", "ImageStatus", { image: { image }, verbose: true });
    if (!res.image) {
      process.stderr.write(`crib ctl inspecti: no such image: ${image}\n`);
      code = 1;
      continue;
    }
    out(structured(flag(args, "output") ?? "json", { status: protoJson("runtime.v1.Image", res.image), ...verboseInfo(res.info) }));
  }
  return code;
}

export const rmi: CtlCommand = {
  name: "rmi",
  summary: "remove images",
  args: "IMAGE...",
  flags: [],
  operands: ["image"],
  examples: ["crib ctl rmi busybox:latest", "crib ctl images -q | xargs crib ctl rmi"],
  run: runRmi,
};

async function runRmi({ client, args, out }: CtlContext): Promise<number> {
  if (args.positionals.length === 0) throw new UsageError("which image? give IMAGE...");
  let code = 0;
  for (const image of args.positionals) {
    const st = await client.call("ImageService", "ImageStatus", { image: { image }, verbose: false });
    if (!st.image) {
      process.stderr.write(`crib ctl rmi: no such image: ${image}\n`);
      code = 1;
      continue;
    }
    await client.call("ImageService", "RemoveImage", { image: { image } });
    out(`Deleted: ${[...st.image.repo_tags, ...st.image.repo_digests].join(", ") || st.image.id}\n`);
  }
  return code;
}

export const store: CtlCommand = {
  name: "store",
  summary: "what the image store holds on disk, and what nothing uses",
  args: "",
  flags: [],
  examples: ["crib ctl store"],
  run: runStore,
};

async function runStore({ client, out }: CtlContext): Promise<number> {
  const u = await client.call("Crib", "StoreUsage", {});
  out(
    table(["WHAT", "COUNT", "SIZE"], [
      ["images", String(u.images), ""],
      ["blobs", String(u.blob_count), humanBytes(Number(u.blob_bytes))],
      ["layers", String(u.layer_count), `${humanBytes(Number(u.layer_bytes))} (${u.layer_inodes} inodes)`],
      ["partial downloads", "", humanBytes(Number(u.ingest_bytes))],
    ]),
  );
  if (u.orphan_blobs.length + u.orphan_layers.length > 0) {
    out(`unreferenced (removed at the next start or image removal):\n${[...u.orphan_blobs, ...u.orphan_layers].map((x) => `  ${x}\n`).join("")}`);
  }
  return 0;
}
