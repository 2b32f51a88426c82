import type { GenEnum } from "@bufbuild/protobuf/codegenv2";

/**
 * A proto enum and the database enum of the same values, both ways. Values are matched by name
 * (the generated name, without the prefix all of an enum's values share, e.g. `APP_HEALTH_`):
 * the database's `slim-window` is the proto's `SLIM_WINDOW`, `healthy` is `HEALTHY`.
 */
export interface EnumMapping<P extends number, D extends string> {
  /** The database value of a proto value; undefined for UNSPECIFIED and any value the database lacks. */
  toDb(value: P): D | undefined;
  /** The proto value of a database value; undefined when the proto enum lacks it. */
  toProto(value: D): P | undefined;
}

/** Builds the mapping from the generated enum descriptor and the database enum's values. */
export function enumMapping<P extends number, D extends string>(schema: GenEnum<P>, dbValues: readonly D[]): EnumMapping<P, D> {
  const dbByProtoName = new Map(dbValues.map((d) => [d.toUpperCase().replaceAll("-", "_"), d]));
  const toDb = new Map<number, D>();
  const toProto = new Map<D, P>();
  for (const value of schema.values) {
    const db = dbByProtoName.get(value.localName);
    if (db === undefined) continue;
    toDb.set(value.number, db);
    toProto.set(db, value.number as P);
  }
  return { toDb: (value) => toDb.get(value), toProto: (value) => toProto.get(value) };
}
