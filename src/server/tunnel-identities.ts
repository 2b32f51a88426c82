import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest, ServerHttp2Session } from "node:http2";
import type { Duplex } from "node:stream";

/** A server a connection can be handed to: it takes one through its 'connection' event. */
interface ConnectionTaker {
  emit(event: "connection", connection: Duplex): boolean;
}

/**
 * Who a request inside a tunnel comes from (an agent, or a client of the coordination route), known
 * without a token: one instance per kind of tunnel. The HTTP/1.1 server
 * uses a tunnel's yamux stream itself as the request's socket, so the stream is the key. The
 * HTTP/2 server wraps a stream that is not a net.Socket in a socket of its own, so there the key
 * is the session it creates for the stream: Node creates it, and emits the server's 'session'
 * event, synchronously while the stream is handed over, which is when {@link adoptSession} runs.
 */
export class TunnelIdentities<I extends object> {
  private readonly byConnection = new WeakMap<object, I>();
  private handingOver: I | undefined;

  /** Hands a tunnel's stream to `server` as a connection of `identity`. */
  handOver(server: ConnectionTaker, stream: Duplex, identity: I): void {
    this.byConnection.set(stream, identity);
    this.handingOver = identity;
    try {
      server.emit("connection", stream);
    } finally {
      this.handingOver = undefined;
    }
  }

  /** For the HTTP/2 server's 'session' event: a session made for a stream being handed over is that tunnel's. */
  adoptSession(session: ServerHttp2Session): void {
    if (this.handingOver !== undefined) this.byConnection.set(session, this.handingOver);
  }

  /** The tunnel identity of a request; undefined for plain-port requests. */
  of(req: IncomingMessage | Http2ServerRequest): I | undefined {
    if (req.httpVersionMajor === 2) {
      const session = (req as Http2ServerRequest).stream.session;
      return session === undefined ? undefined : this.byConnection.get(session);
    }
    return this.byConnection.get(req.socket);
  }
}
