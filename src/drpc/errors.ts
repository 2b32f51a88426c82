/** Error codes of the DRPC package, one place for all of them. */
export const DrpcErrorCode = {
  /** The peer broke the protocol (framing, ids, kinds, sizes); the transport is closed. */
  Protocol: "ERR_DRPC_PROTOCOL",
  /** The transport (the byte stream under the RPCs) ended, was reset or failed. */
  TransportClosed: "ERR_DRPC_TRANSPORT_CLOSED",
  /** The RPC was canceled: by the peer's Cancel, or by a newer RPC on the same transport. */
  Canceled: "ERR_DRPC_CANCELED",
  /** The RPC is over on this side (Close, Error or CloseSend already sent or received). */
  StreamClosed: "ERR_DRPC_STREAM_CLOSED",
  /** The peer answered with an Error packet; `wireCode` holds its numeric code. */
  Remote: "ERR_DRPC_REMOTE",
  /** A message to send is larger than a packet may be. */
  MessageTooLarge: "ERR_DRPC_MESSAGE_TOO_LARGE",
  /** The peer ended a unary RPC without sending the reply message (drpc's io.EOF). */
  MissingReply: "ERR_DRPC_MISSING_REPLY",
} as const;
/** A DRPC error code. */
export type DrpcErrorCode = (typeof DrpcErrorCode)[keyof typeof DrpcErrorCode];

/** The one error type of the package: a code to branch on and a message for people. */
export class DrpcError extends Error {
  readonly code: DrpcErrorCode;
  /** For `ERR_DRPC_REMOTE`: the numeric code the peer sent (Coder sends gRPC's codes); 0 otherwise. */
  readonly wireCode: number;

  constructor(code: DrpcErrorCode, message: string, wireCode = 0) {
    super(message);
    this.name = "DrpcError";
    this.code = code;
    this.wireCode = wireCode;
  }
}

// Termination reasons. They are preallocated because every RPC ends with one and an abort
// reason must cost nothing per call; they are shared, so treat them as read-only.

/** Both sides sent CloseSend: the RPC ended normally. */
export const BOTH_CLOSED = new DrpcError(DrpcErrorCode.StreamClosed, "stream terminated by both issuing close send");
/** The peer sent Close. */
export const CLOSED_BY_PEER = new DrpcError(DrpcErrorCode.StreamClosed, "remote closed the stream");
/** This side sent Close. */
export const CLOSED_LOCALLY = new DrpcError(DrpcErrorCode.StreamClosed, "stream terminated by sending close");
/** This side sent Error. */
export const ERRORED_LOCALLY = new DrpcError(DrpcErrorCode.StreamClosed, "stream terminated by sending error");
/** This side sent CloseSend: no more sends. */
export const SEND_CLOSED = new DrpcError(DrpcErrorCode.StreamClosed, "send closed");
/** The peer sent Cancel. */
export const CANCELED_BY_PEER = new DrpcError(DrpcErrorCode.Canceled, "remote canceled the stream");
/** A newer RPC started on the same transport. */
export const SUPERSEDED = new DrpcError(DrpcErrorCode.Canceled, "a newer RPC started on the transport");
/** The caller's AbortSignal fired. */
export const CANCELED_BY_CALLER = new DrpcError(DrpcErrorCode.Canceled, "canceled by the caller");
/** The peer ended the transport (FIN) or it was closed here. */
export const TRANSPORT_ENDED = new DrpcError(DrpcErrorCode.TransportClosed, "transport ended");
/** The transport was reset or failed. */
export const TRANSPORT_CLOSED = new DrpcError(DrpcErrorCode.TransportClosed, "transport closed");
