import { Code, ConnectError } from "@connectrpc/connect";
import { DrpcError, DrpcErrorCode } from "../drpc/index.js";

const HIGHEST_CODE = Code.Unauthenticated;

/**
 * A DRPC failure as a `ConnectError`. A peer's Error packet keeps its code (Coder's are gRPC's,
 * which are Connect's; anything else becomes Unknown, as drpc's code 0 for "no code" does);
 * the RPC or the transport ending under a call is Canceled or Unavailable. Other errors go
 * through `ConnectError.from`.
 */
export function connectErrorOf(err: unknown): ConnectError {
  if (!(err instanceof DrpcError)) return ConnectError.from(err);
  switch (err.code) {
    case DrpcErrorCode.Remote:
      return new ConnectError(err.message, err.wireCode >= Code.Canceled && err.wireCode <= HIGHEST_CODE ? err.wireCode : Code.Unknown);
    case DrpcErrorCode.Canceled:
    case DrpcErrorCode.StreamClosed:
      return new ConnectError(err.message, Code.Canceled, undefined, undefined, err);
    case DrpcErrorCode.TransportClosed:
      return new ConnectError(err.message, Code.Unavailable, undefined, undefined, err);
    case DrpcErrorCode.MessageTooLarge:
      return new ConnectError(err.message, Code.ResourceExhausted, undefined, undefined, err);
    case DrpcErrorCode.MissingReply:
      return new ConnectError(err.message, Code.Unknown, undefined, undefined, err);
    case DrpcErrorCode.Protocol:
      return new ConnectError(err.message, Code.Internal, undefined, undefined, err);
  }
}
