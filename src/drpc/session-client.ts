import type { Session } from "../yamux/index.js";
import { DrpcClientConnection, type DrpcCallOptions, type DrpcCaller, type DrpcClientOptions } from "./client-connection.js";
import type { DrpcCall } from "./stream.js";

/** Options of a session client: those of each RPC's connection, which always ends after its RPC. */
export type DrpcSessionClientOptions = Omit<DrpcClientOptions, "endAfterRpc">;

/**
 * A DRPC client on a yamux client session that behaves like a Coder agent: every RPC gets a
 * fresh yamux stream with its own DRPC connection (so its stream id is always 1), and the yamux
 * stream is ended (FIN) once the RPC is over.
 */
export class DrpcSessionClient implements DrpcCaller {
  private readonly session: Session;
  private readonly options: DrpcClientOptions;

  constructor(session: Session, options: DrpcSessionClientOptions = {}) {
    this.session = session;
    this.options = { ...options, endAfterRpc: true };
  }

  unary(method: string, request: Uint8Array, options?: DrpcCallOptions): Promise<Uint8Array> {
    return this.connect().unary(method, request, options);
  }

  open(method: string, options?: DrpcCallOptions): DrpcCall {
    return this.connect().open(method, options);
  }

  /** Opens a yamux stream (throws a `YamuxError` when the session can't) and a connection on it. */
  private connect(): DrpcClientConnection {
    return new DrpcClientConnection(this.session.open(), this.options);
  }
}
