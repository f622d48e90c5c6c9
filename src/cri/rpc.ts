// Shapes shared by the CRI handlers: one file per RPC exports a handler built
// with `unary` or `serverStream`, and server.ts wires them to gRPC.
import type { CriContext } from "./context.ts";
import type { CribMethods, ImageServiceMethods, Out, RuntimeServiceMethods } from "../protocol/types.ts";

export interface CallContext {
  /** The RPC name, for logs and errors. */
  method: string;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
}

interface MethodShape { req: unknown; res: unknown; stream: boolean }

export type Handler<M extends MethodShape> = M["stream"] extends true
  ? { kind: "stream"; fn: (d: CriContext, req: M["req"], send: (msg: Out<M["res"]>) => boolean, ctx: CallContext) => Promise<void> }
  : { kind: "unary"; fn: (d: CriContext, req: M["req"], ctx: CallContext) => Promise<Out<M["res"]>> };

export type RuntimeHandlers = { [K in keyof RuntimeServiceMethods]?: Handler<RuntimeServiceMethods[K]> };
export type ImageHandlers = { [K in keyof ImageServiceMethods]?: Handler<ImageServiceMethods[K]> };
export type CribHandlers = { [K in keyof CribMethods]?: Handler<CribMethods[K]> };

export function unary<Req, Res>(fn: (d: CriContext, req: Req, ctx: CallContext) => Promise<Out<Res>>) {
  return { kind: "unary" as const, fn };
}

export function serverStream<Req, Res>(fn: (d: CriContext, req: Req, send: (msg: Out<Res>) => boolean, ctx: CallContext) => Promise<void>) {
  return { kind: "stream" as const, fn };
}
