import { assertImageSpec } from "../image/image_service.ts";
import type { AuthConfig as RegistryAuth } from "../image/registry/client.ts";
import { unary } from "./rpc.ts";
import type { AuthConfig, PullImageRequest, PullImageResponse } from "../protocol/types.ts";

function registryAuth(a: AuthConfig | null): RegistryAuth | undefined {
  if (!a) return undefined;
  const out: RegistryAuth = {
    username: a.username || undefined,
    password: a.password || undefined,
    auth: a.auth || undefined,
    serverAddress: a.server_address || undefined,
    identityToken: a.identity_token || undefined,
    registryToken: a.registry_token || undefined,
  };
  return Object.values(out).some((v) => v !== undefined) ? out : undefined;
}

export const imagePull = unary<PullImageRequest, PullImageResponse>(async (d, req, ctx) => {
  const image = assertImageSpec(req.image, "PullImage");
  const rec = await d.images.pull(image, { auth: registryAuth(req.auth), signal: ctx.signal });
  return { image_ref: rec.id };
});
