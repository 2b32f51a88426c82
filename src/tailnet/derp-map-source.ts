import { readFile, stat } from "node:fs/promises";
import { create, equals, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { DERPMapSchema, type DERPMap } from "../../gen/coder/tailnet/v2/tailnet_pb.js";

/** Where the current DERP map comes from; `current()` is cheap enough to call every few seconds. */
export interface DerpMapSource {
  current(): Promise<DERPMap>;
}

/** An empty map: what agents get when no `--derp-map` is configured. */
export function emptyDerpMapSource(): DerpMapSource {
  const empty = create(DERPMapSchema);
  return { current: async () => empty };
}

/**
 * A DERP map kept in a JSON file (protobuf JSON of `coder.tailnet.v2.DERPMap`), re-read when its
 * modification time changes, so an operator can edit it live. A file that stops parsing keeps
 * the last good map and reports the error through `onError`.
 */
export function fileDerpMapSource(path: string, onError: (err: Error) => void): DerpMapSource {
  let cached: { mtimeMs: number; map: DERPMap } | undefined;
  return {
    async current() {
      try {
        const { mtimeMs } = await stat(path);
        if (cached?.mtimeMs !== mtimeMs) {
          const map = fromJson(DERPMapSchema, JSON.parse(await readFile(path, "utf8")) as JsonValue);
          cached = { mtimeMs, map };
        }
      } catch (err) {
        if (cached === undefined) throw new Error(`--derp-map ${path}: ${(err as Error).message}`);
        onError(err as Error);
      }
      return cached.map;
    },
  };
}

/** Structural comparison, as StreamDERPMaps sends a map again only when it changed. */
export function derpMapsEqual(a: DERPMap, b: DERPMap): boolean {
  return equals(DERPMapSchema, a, b);
}
