import type { IncomingMessage, Server as Http1Server, ServerResponse } from "node:http";
import type { ServerHttp2Session } from "node:http2";
import type { Duplex } from "node:stream";

/**
 * Node starts its own headers-timeout checker only in `listen()`, and these servers are handed
 * connections by hand (TCP sockets and yamux streams), so the deadline is kept here: a
 * connection must complete a request's headers within `timeoutMs` of opening, and again of
 * finishing each response while it has no other request open. A connection dripping its headers
 * a byte at a time is closed at the deadline however active it is. Upgraded connections leave
 * HTTP and the deadline with it.
 */
export function enforceHttp1HeaderTimeout(server: Http1Server, timeoutMs: number, onTimeout: () => void): void {
  const deadlines = new WeakMap<Duplex, NodeJS.Timeout>();
  const open = new WeakMap<Duplex, number>();
  const arm = (connection: Duplex) => {
    if (connection.destroyed) return;
    const timer = setTimeout(() => {
      onTimeout();
      connection.destroy();
    }, timeoutMs);
    timer.unref();
    deadlines.set(connection, timer);
  };
  const disarm = (connection: Duplex) => {
    clearTimeout(deadlines.get(connection));
    deadlines.delete(connection);
  };
  server.on("connection", (connection: Duplex) => {
    arm(connection);
    connection.once("close", () => disarm(connection));
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const connection = req.socket;
    disarm(connection);
    open.set(connection, (open.get(connection) ?? 0) + 1);
    res.once("close", () => {
      const left = (open.get(connection) ?? 1) - 1;
      open.set(connection, left);
      if (left === 0 && !connection.destroyed) arm(connection);
    });
  });
  server.on("upgrade", (req: IncomingMessage) => disarm(req.socket));
}

/**
 * The HTTP/2 counterpart for plain-port sessions: the first stream's headers must arrive within
 * `timeoutMs` of the session opening, so a client dripping its preface and settings is cut.
 */
export function enforceHttp2FirstStreamTimeout(session: ServerHttp2Session, timeoutMs: number, onTimeout: () => void): void {
  const timer = setTimeout(() => {
    onTimeout();
    session.destroy();
  }, timeoutMs);
  timer.unref();
  session.once("stream", () => clearTimeout(timer));
  session.once("close", () => clearTimeout(timer));
}
