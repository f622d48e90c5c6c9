// crib ctl verify IMAGE: which policy rule applies to an image and whether its
// registry holds what the rule wants (the same check a pull makes, nothing stored).
// Exit 0 when the image would be pulled, 1 when the policy refuses it.
import { boolFlag, parseArgs, UsageError } from "../cli/args.ts";
import type { CtlContext } from "./ctl.ts";

export async function ctlVerify({ client, argv, out }: CtlContext): Promise<number> {
  const args = parseArgs(argv, [{ name: "json", boolean: true, help: "print the result as JSON" }]);
  const image = args.positionals[0];
  if (!image || args.positionals.length > 1) throw new UsageError("usage: crib ctl verify [--json] IMAGE");
  const r = await client.call("Crib", "VerifyImage", { image });
  if (boolFlag(args, "json")) {
    out(`${JSON.stringify(r, null, 2)}\n`);
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
