// The shapes of the generated wire tables (src/protocol/messages.ts).

/** The scalar types of proto3; anything else in a field's type is a message or enum full name. */
export type ScalarName =
  | "double" | "float" | "int32" | "int64" | "uint32" | "uint64" | "sint32" | "sint64"
  | "fixed32" | "fixed64" | "sfixed32" | "sfixed64" | "bool" | "string" | "bytes";

/** A field: [name, number, type] for a singular one, [..., 1] repeated, [..., 2, keyType] a map. */
export type FieldEntry = readonly [name: string, number: number, type: string, mode?: 1 | 2, keyType?: string];

/** A message's fields in declaration order (the order crictl's JSON keeps). */
export type MessageTable = readonly FieldEntry[];

/** An enum's names by number. */
export type EnumTable = Readonly<Record<string, string>>;

/** A service's methods: [name, request type, response type, whether the response streams]. */
export type ServiceTable = readonly (readonly [name: string, requestType: string, responseType: string, responseStream: boolean])[];
