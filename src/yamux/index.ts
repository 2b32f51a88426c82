/**
 * agentgate's yamux multiplexer (hashicorp/yamux compatible) over any Node Duplex.
 * Knows bytes and streams, nothing of agents.
 */
export { Session } from "./session.js";
export { MIN_MAX_MESSAGE_BYTES, type SessionOptions } from "./session-config.js";
export type { SessionCounters, FrameCounts } from "./session-counters.js";
export { Stream } from "./stream.js";
export { GoAwayCode, INITIAL_STREAM_WINDOW } from "./frame.js";
export { YamuxError, YamuxErrorCode } from "./errors.js";
