// crib ctl pull / images / inspecti / rmi / store.
import { boolFlag, flag, parseArgs, UsageError } from "../cli/args.ts";
import type { PullProgress } from "../cri/types.ts";
import type { CtlContext } from "./ctl.ts";
import { humanBytes, shortId, table } from "./format.ts";

const PULL_TIMEOUT_MS = 6 * 3600 * 1000;

export async function ctlPull({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "creds", help: "registry credentials user[:password]" },
    { name: "auth", help: "base64 user:password" },
    { name: "quiet", short: "q", boolean: true, help: "print only the image id" },
  ]);
  const image = args.positionals[0];
  if (!image || args.positionals.length > 1) throw new UsageError("usage: crib ctl pull [--creds USER[:PASS]] [--auth B64] IMAGE");
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

export async function ctlImages({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [
    { name: "quiet", short: "q", boolean: true, help: "only image ids" },
    { name: "digests", boolean: true, help: "show digests" },
    { name: "output", short: "o", help: "json" },
  ]);
  const filter = args.positionals[0];
  const res = await client.call("ImageService", "ListImages", { filter: filter ? { image: { image: filter } } : null });
  if (flag(args, "output") === "json") {
    out(JSON.stringify({ images: res.images }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
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
      if (boolFlag(args, "digests")) row.push(shortId(digest));
      row.push(shortId(img.id), humanBytes(Number(img.size)));
      rows.push(row);
    }
  }
  const header = ["IMAGE", "TAG", ...(boolFlag(args, "digests") ? ["DIGEST"] : []), "IMAGE ID", "SIZE"];
  out(table(header, rows));
  return 0;
}

export async function ctlInspecti({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, []);
  if (args.positionals.length === 0) throw new UsageError("usage: crib ctl inspecti IMAGE [IMAGE...]");
  let code = 0;
  for (const image of args.positionals) {
    const res = await client.call("ImageService", "ImageStatus", { image: { image }, verbose: true });
    if (!res.image) {
      process.stderr.write(`no such image: ${image}\n`);
      code = 1;
      continue;
    }
    const info: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(res.info)) info[k] = JSON.parse(v) as unknown;
    out(JSON.stringify({ status: res.image, ...info }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
  }
  return code;
}

export async function ctlRmi({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "prune", boolean: true, help: "remove every image (no container use tracked yet)" }]);
  if (args.positionals.length === 0) throw new UsageError("usage: crib ctl rmi IMAGE [IMAGE...]");
  let code = 0;
  for (const image of args.positionals) {
    const st = await client.call("ImageService", "ImageStatus", { image: { image }, verbose: false });
    if (!st.image) {
      process.stderr.write(`no such image: ${image}\n`);
      code = 1;
      continue;
    }
    await client.call("ImageService", "RemoveImage", { image: { image } });
    out(`Deleted: ${[...st.image.repo_tags, ...st.image.repo_digests].join(", ") || st.image.id}\n`);
  }
  return code;
}

export async function ctlStore({ client, out }: CtlContext): Promise<number> {
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
