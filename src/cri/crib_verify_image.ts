// crib.v1 VerifyImage (crib ctl verify): the image's rule and whether it passes,
// checked on the registry as a pull would check it; nothing is stored.
import { invalidArgument } from "../errors.ts";
import { unary } from "./rpc.ts";
import type { VerifyImageRequest, VerifyImageResponse } from "../protocol/types.ts";

export const cribVerifyImage = unary<VerifyImageRequest, VerifyImageResponse>(async (d, req, ctx) => {
  if (!req.image) throw invalidArgument("VerifyImage: image is empty: give an image reference");
  const r = await d.images.verify(req.image, { signal: ctx.signal });
  return {
    image: r.image,
    digests: r.digests,
    rule_scope: r.rule.scope,
    rule_type: r.rule.type,
    allowed: r.verdict !== undefined,
    message: r.verdict?.summary ?? r.refusal ?? "",
    matched: (r.verdict?.matched ?? []).map((m) => ({ key: m.key, key_type: m.keyType, fingerprint: m.fingerprint, source: m.source })),
    signatures_found: r.signaturesFound,
  };
});
