// crib ctl verify IMAGE: which policy rule applies to an image and whether its
// registry holds what the rule wants (the same check a pull makes, nothing stored).
// Exit 0 when the image would be pulled, 1 when the policy refuses it.
import { flag, UsageError } from "../cli/args.ts";
import type { CtlCommand } from "./command.ts";
import type { CtlContext } from "./context.ts";
import { protoJson, structured } from "./format.ts";

export const verify: CtlCommand = {
  name: "verify",
  summary: "check an image against the signature policy, without pulling it",
  args: "[flags] IMAGE",
  flags: [{ name: "output", short: "o", value: "FORMAT", values: ["text", "json", "yaml"], default: "text", help: "output format" }],
  operands: ["image"],
  examples: ["crib ctl verify registry.example.com/team/app:1.0", "crib ctl verify -o json busybox:latest"],
  run: runVerify,
};

async function runVerify({ client, args, out }: CtlContext): Promise<number> {
  const image = args.positionals[0];
  if (!image) throw new UsageError("which image? give IMAGE");
  if (args.positionals.length > 1) throw new UsageError(`verify takes one IMAGE (got ${args.positionals.join(" ")})`);
  const r = await client.call("Crib", "VerifyImage", { image });
  const format = flag(args, "output") ?? "text";
  if (format !== "text") {
    out(structured(format, protoJson("crib.v1.VerifyImageResponse", r)));
    return r.allowed ? 0 : 1;
  }
  out(`image:      ${r.image}\n`);
  out(`digest:     ${r.digests.join(" (index), ")}${r.digests.length > 1 ? " (platform manifest)" : ""}\n`);
  out(`rule:       ${r.rule_scope} (${r.rule_type})\n`);
  if (r.rule_type === "signedBy") out(`signatures: ${r.signatures_found} found\n`);
  for (const m of r.matched) out(`matched:    ${m.key} (${m.key_type}, sha256:${m.fingerprint.slice(0, 16)}...) at ${m.source}\n`);
  out(`${r.allowed ? "allowed" : "refused"}:    ${r.message}\n`);
  return r.allowed ? 0 : 1;
}
