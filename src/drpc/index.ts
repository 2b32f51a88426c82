/**
 * agentgate's DRPC (storj.io/drpc, as Coder's agents speak it on each yamux stream) over any Node
 * Duplex: the frame codec, the server connection and an agent-like client. Knows bytes and
 * streams, nothing of agents or protobuf schemas.
 */
export { DrpcServerConnection, type DrpcHandler } from "./server-connection.js";
export { DrpcClientConnection, type DrpcCaller, type DrpcCallOptions, type DrpcClientOptions } from "./client-connection.js";
export { DrpcSessionClient, type DrpcSessionClientOptions } from "./session-client.js";
export type { DrpcConnectionOptions } from "./connection.js";
export type { DrpcCall } from "./stream.js";
export { DrpcError, DrpcErrorCode } from "./errors.js";
export { MAX_PACKET_BYTES, PacketKind, SPLIT_SIZE } from "./wire.js";
