/**
 * Renders descriptors as short, stable strings, so the contract table in
 * wire-contract.ts reads like the .proto and a diff names the field that moved.
 */
import { ScalarType, type DescEnum, type DescField, type DescMessage, type DescService } from "@bufbuild/protobuf";

/** "name=number type", e.g. "interval=2 google.protobuf.Duration", "regions=2 map<int64, coder.tailnet.v2.DERPMap.Region>". */
export function describeField(field: DescField): string {
  let type: string;
  switch (field.fieldKind) {
    case "scalar":
      type = scalarName(field.scalar);
      break;
    case "enum":
      type = field.enum.typeName;
      break;
    case "message":
      type = field.message.typeName;
      break;
    case "list":
      type = `repeated ${field.listKind === "scalar" ? scalarName(field.scalar) : field.listKind === "enum" ? field.enum.typeName : field.message.typeName}`;
      break;
    case "map": {
      const value = field.mapKind === "scalar" ? scalarName(field.scalar) : field.mapKind === "enum" ? field.enum.typeName : field.message.typeName;
      type = `map<${scalarName(field.mapKey)}, ${value}>`;
      break;
    }
  }
  const optional = field.proto.proto3Optional ? "optional " : "";
  const oneof = field.oneof !== undefined && !field.proto.proto3Optional ? ` (oneof ${field.oneof.name})` : "";
  return `${field.name}=${field.number} ${optional}${type}${oneof}`;
}

export function describeMessage(message: DescMessage): string[] {
  return message.fields.map(describeField);
}

export function describeEnum(desc: DescEnum): string[] {
  return desc.values.map((v) => `${v.name}=${v.number}`);
}

/** "Method kind Request Response", e.g. "Coordinate bidi_streaming coder.tailnet.v2.CoordinateRequest coder.tailnet.v2.CoordinateResponse". */
export function describeService(service: DescService): string[] {
  return service.methods.map((m) => `${m.name} ${m.methodKind} ${m.input.typeName} ${m.output.typeName}`);
}

function scalarName(scalar: ScalarType): string {
  return ScalarType[scalar].toLowerCase();
}
