// protobufjs over the .proto files: the reference the generated codecs are checked
// against, and the encoder of tests that build requests the typed client would refuse.
// Test-only: nothing under src/ loads protobufjs.
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseProtos, PROTO_FILES } from "../../build/gen_protocol.ts";
import { criMethods, type CriServiceName } from "../../src/protocol/proto.ts";

/** How crib's code sees decoded messages (what the generated codec must match). */
export const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: BigInt, enums: Number, bytes: Buffer, defaults: true, arrays: true, objects: true };

let root: protobuf.Root | undefined;

export function criRoot(): protobuf.Root {
  root ??= parseProtos(PROTO_FILES.map((f) => readFileSync(join(import.meta.dir, "../..", f), "utf8")));
  return root;
}

export function criType(fullName: string): protobuf.Type {
  return criRoot().lookupType(fullName);
}

export function decodeMessage<T>(type: protobuf.Type, bytes: Uint8Array): T {
  return type.toObject(type.decode(bytes), DECODE_OPTIONS) as T;
}

export function encodeMessage(type: protobuf.Type, value: object): Buffer {
  const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A grpc-js client-side service definition, for tests that speak gRPC with grpc-js. */
export function grpcServiceDefinition(name: CriServiceName): ServiceDefinition {
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const m of criMethods(name)) {
    const req = criType(m.requestType);
    const res = criType(m.responseType);
    def[m.name] = {
      path: m.path,
      requestStream: false,
      responseStream: m.responseStream,
      requestSerialize: (v: unknown) => encodeMessage(req, v as object),
      requestDeserialize: (b: Buffer) => decodeMessage(req, b),
      responseSerialize: (v: unknown) => encodeMessage(res, v as object),
      responseDeserialize: (b: Buffer) => decodeMessage(res, b),
    };
  }
  return def;
}
