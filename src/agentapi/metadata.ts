import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { BatchUpdateMetadataResponseSchema, type BatchUpdateMetadataRequest, type BatchUpdateMetadataResponse } from "../../gen/coder/agent/v2/agent_pb.js";
import { truncateUtf8 } from "../truncate-utf8.js";
import type { AgentApiContext } from "./context.js";
import { MAX_METADATA_ENTRIES_PER_CALL } from "./limits.js";

/**
 * Size limits of one BatchUpdateMetadata call, as coderd's. They keep a whole call's keys, and a
 * value plus an error, inside one 8000-byte NOTIFY payload, as Coder sized them.
 */
export const METADATA_LIMITS = { totalKeyBytes: 6144, valueBytes: 2048, errorBytes: 2048 } as const;

/**
 * BatchUpdateMetadata: checks the limits, stamps server time (agents' clocks drift), and queues
 * each result for the metadata batcher, which writes and publishes many agents at once. Keys the
 * provisioner didn't declare are ignored by that write.
 */
export function metadataApi(api: AgentApiContext) {
  return {
    async batchUpdateMetadata(req: BatchUpdateMetadataRequest, ctx: HandlerContext): Promise<BatchUpdateMetadataResponse> {
      const { agent } = await api.loadCaller(ctx);
      // Keys may be empty, so the key budget alone doesn't bound how many entries a call holds.
      if (req.metadata.length > MAX_METADATA_ENTRIES_PER_CALL) {
        throw new ConnectError(`${req.metadata.length} metadata entries; at most ${MAX_METADATA_ENTRIES_PER_CALL} per call`, Code.ResourceExhausted);
      }
      const collectedAt = api.clock();
      let keyBytes = 0;
      let keysExceeded = false;
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
        // A full queue drops the result; the batcher counts it and warns, at most once per interval.
        api.batchers.metadata.add({ agentId: agent.id, key: md.key, value, error, collectedAt });
      }
      if (keysExceeded) {
        throw new ConnectError(`metadata keys of ${keyBytes} bytes exceeded ${METADATA_LIMITS.totalKeyBytes} bytes`, Code.ResourceExhausted);
      }
      return create(BatchUpdateMetadataResponseSchema);
    },
  };
}
