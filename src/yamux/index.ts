/**
 * agentgate's yamux multiplexer (hashicorp/yamux compatible) over any Node Duplex.
 * Knows bytes and streams, nothing of agents.
 */
export { Session, type SessionOptions, type SessionCounters, type FrameCounts } from "./session.js";
export { Stream } from "./stream.js";
export { GoAwayCode, INITIAL_STREAM_WINDOW } from "./frame.js";
export { YamuxError, YamuxErrorCode } from "./errors.js";
