// The CRI protocol: proto/api.proto is embedded in the binary as text and
// parsed with protobufjs at start-up; gRPC method definitions are built from it
// directly, so no generated code or proto files on disk are needed.
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import protoText from "../../proto/api.proto" with { type: "text" };
import cribProtoText from "../../proto/crib.proto" with { type: "text" };

/** Each service and the proto package it lives in. */
const PACKAGES = { RuntimeService: "runtime.v1", ImageService: "runtime.v1", Crib: "crib.v1" } as const;

/** How decoded messages look to crib's code: snake_case names, int64 as bigint,
 *  enums as numbers, every field present with its default. */
const DECODE_OPTIONS: protobuf.IConversionOptions = {
  longs: BigInt,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  objects: true,
};

let root: protobuf.Root | undefined;

export function criRoot(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    protobuf.parse(protoText, root, { keepCase: true });
    protobuf.parse(cribProtoText, root, { keepCase: true });
    root.resolveAll();
  }
  return root;
}

export type CriServiceName = keyof typeof PACKAGES;

export interface CriMethod {
  service: CriServiceName;
  name: string;
  requestType: string;
  responseType: string;
  responseStream: boolean;
}

export function criService(name: CriServiceName): protobuf.Service {
  return criRoot().lookupService(`${PACKAGES[name]}.${name}`);
}

export function criMethods(name: CriServiceName): CriMethod[] {
  return criService(name).methodsArray.map((m) => {
    m.resolve();
    return {
      service: name,
      name: m.name,
      requestType: m.resolvedRequestType!.fullName.slice(1),
      responseType: m.resolvedResponseType!.fullName.slice(1),
      responseStream: Boolean(m.responseStream),
    };
  });
}

/** A message type by full name ("runtime.v1.PullImageRequest"). */
export function criType(fullName: string): protobuf.Type {
  return criRoot().lookupType(fullName);
}

/** Decode wire bytes to a plain object (see DECODE_OPTIONS). */
export function decodeMessage<T>(type: protobuf.Type, bytes: Uint8Array): T {
  return type.toObject(type.decode(bytes), DECODE_OPTIONS) as T;
}

/** Encode a plain object (int64 fields may be bigint, number or string).
 *  Its shape is checked at compile time by the generated types in cri/types. */
export function encodeMessage(type: protobuf.Type, value: object): Buffer {
  return Buffer.from(type.encode(type.fromObject(value as Record<string, unknown>)).finish());
}

/** A request that did not decode; the server answers INVALID_ARGUMENT for it. */
export class MalformedRequest {
  constructor(readonly reason: string) {}
}

/**
 * A grpc-js service definition (server or client side) for one CRI service.
 * Server side, a request that fails to decode becomes a MalformedRequest
 * instead of grpc-js's generic INTERNAL error.
 */
export function grpcServiceDefinition(name: CriServiceName, side: "client" | "server" = "client"): ServiceDefinition {
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const m of criMethods(name)) {
    const req = criType(m.requestType);
    const res = criType(m.responseType);
    def[m.name] = {
      path: `/${PACKAGES[name]}.${name}/${m.name}`,
      requestStream: false,
      responseStream: m.responseStream,
      requestSerialize: (v: unknown) => encodeMessage(req, v as object),
      requestDeserialize: (b: Buffer) => {
        if (side === "client") return decodeMessage(req, b);
        try {
          return decodeMessage(req, b);
        } catch (e) {
          return new MalformedRequest(e instanceof Error ? e.message : String(e));
        }
      },
      responseSerialize: (v: unknown) => encodeMessage(res, v as object),
      responseDeserialize: (b: Buffer) => decodeMessage(res, b),
    };
  }
  return def;
}
