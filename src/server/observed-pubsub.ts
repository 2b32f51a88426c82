import type { Pubsub } from "../db/pubsub.js";

/**
 * The database's pubsub with failed publishes counted, for /metrics. Publish errors still
 * reach the caller (which logs and drops them: an event never fails an RPC).
 */
export function observedPubsub(pubsub: Pubsub, onPublishError: () => void): Pubsub {
  return {
    async publish(channel, payload) {
      try {
        await pubsub.publish(channel, payload);
      } catch (err) {
        onPublishError();
        throw err;
      }
    },
    subscribe: (channel, onEvent, onError) => pubsub.subscribe(channel, onEvent, onError),
    isListening: () => pubsub.isListening(),
  };
}
