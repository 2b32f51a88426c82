import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { BatchUpdateMetadataResponseSchema, type BatchUpdateMetadataRequest, type BatchUpdateMetadataResponse } from "../../gen/coder/agent/v2/agent_pb.js";
import type { MetadataUpdate } from "../db/queries/metadata.js";
import type { Logger } from "../log.js";
import type { LoadCaller } from "./caller.js";
import type { Clock } from "./publish.js";

/**
 * Size limits of one BatchUpdateMetadata call (agent-api.md §2.7). They keep a whole call's keys,
 * and a value plus an error, inside one 8000-byte NOTIFY payload, as Coder sized them.
 */
export const METADATA_LIMITS = { totalKeyBytes: 6144, valueBytes: 2048, errorBytes: 2048 } as const;

/** What BatchUpdateMetadata needs. */
export interface MetadataDeps {
  loadCaller: LoadCaller;
  /** Queues a result for the metadata batcher; false when it was dropped (queue full). */
  enqueueMetadata(update: MetadataUpdate): boolean;
  now: Clock;
  logger: Logger;
}

/**
 * BatchUpdateMetadata: checks the limits, stamps server time (agents' clocks drift), and queues
 * each result for the metadata batcher, which writes and publishes many agents at once. Keys the
 * provisioner didn't declare are ignored by that write.
 */
export function metadataApi(deps: MetadataDeps) {
  return {
    async batchUpdateMetadata(req: BatchUpdateMetadataRequest, ctx: HandlerContext): Promise<BatchUpdateMetadataResponse> {
      const { agent } = await deps.loadCaller(ctx);
      const collectedAt = deps.now();
      let keyBytes = 0;
      let keysExceeded = false;
      let dropped = 0;
      for (const md of req.metadata) {
        keyBytes += Buffer.byteLength(md.key);
        if (keyBytes > METADATA_LIMITS.totalKeyBytes) {
          // Coder stops here: later entries are not written, and the call fails after the write.
          keysExceeded = true;
          break;
        }
        let value = md.result?.value ?? "";
        let error = md.result?.error ?? "";
        const valueBytes = Buffer.byteLength(value);
        if (valueBytes > METADATA_LIMITS.valueBytes) {
          error = `value of ${valueBytes} bytes exceeded ${METADATA_LIMITS.valueBytes} bytes`;
          value = truncateUtf8(value, METADATA_LIMITS.valueBytes);
        }
        const errorBytes = Buffer.byteLength(md.result?.error ?? "");
        if (errorBytes > METADATA_LIMITS.errorBytes) error = `error of ${errorBytes} bytes exceeded ${METADATA_LIMITS.errorBytes} bytes`;
        if (!deps.enqueueMetadata({ agentId: agent.id, key: md.key, value, error, collectedAt })) dropped++;
      }
      if (dropped > 0) deps.logger.warn({ agent_id: agent.id, dropped }, "metadata batcher full; results dropped");
      if (keysExceeded) {
        throw new ConnectError(`metadata keys of ${keyBytes} bytes exceeded ${METADATA_LIMITS.totalKeyBytes} bytes`, Code.ResourceExhausted);
      }
      return create(BatchUpdateMetadataResponseSchema);
    },
  };
}

/** The longest prefix of `s` of at most `maxBytes` UTF-8 bytes that doesn't split a character. */
export function truncateUtf8(s: string, maxBytes: number): string {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= maxBytes) return s;
  let end = maxBytes;
  // Back off continuation bytes (10xxxxxx) so the cut falls on a character boundary.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
