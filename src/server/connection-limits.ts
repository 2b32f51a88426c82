import type { Socket } from "node:net";

/** The caps on TCP connections, from the server's config. */
export interface ConnectionLimitOptions {
  /** Open at once in total; past it a new connection is closed on arrival. */
  maxConnections: number;
  /** Open at once from one remote address; 0: no limit. */
  maxConnectionsPerAddress: number;
  /** The last this many of `maxConnections` only serve agents' dials and the control API. */
  reserve: number;
}

/** Why a connection was closed on arrival, for `agentgate_connections_refused_total`. */
export type ConnectionRefusal = "total" | "per_address";

/** Set on a socket admitted into the reserve: it may only dial as an agent or call the control API. */
const IN_RESERVE = Symbol("agentgate.connectionInReserve");

/**
 * Counts open TCP connections, in total and per remote address, and decides on each arrival:
 * admitted, admitted into the reserve (the server is nearly full: only agents' dials and the
 * control API may use it, so floods of anything else can't lock them out), or refused.
 */
export class ConnectionLimits {
  private open = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly options: ConnectionLimitOptions) {}

  /** Connections open right now. */
  get count(): number {
    return this.open;
  }

  /** Counts `socket` until it closes, or returns why it must be closed now. */
  admit(socket: Socket): ConnectionRefusal | undefined {
    const { maxConnections, maxConnectionsPerAddress, reserve } = this.options;
    if (this.open >= maxConnections) return "total";
    const address = socket.remoteAddress ?? "";
    const fromAddress = this.byAddress.get(address) ?? 0;
    if (maxConnectionsPerAddress > 0 && fromAddress >= maxConnectionsPerAddress) return "per_address";
    if (this.open >= maxConnections - reserve) (socket as unknown as Record<symbol, boolean>)[IN_RESERVE] = true;
    this.open++;
    this.byAddress.set(address, fromAddress + 1);
    socket.once("close", () => {
      this.open--;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left === 0) this.byAddress.delete(address);
      else this.byAddress.set(address, left);
    });
    return undefined;
  }
}

/**
 * True when the request's connection was admitted into the reserve. Works for HTTP/2 requests
 * too: their `socket` is a proxy that passes property reads through to the TCP socket.
 */
export function inReserve(req: { socket: unknown }): boolean {
  return (req.socket as Record<symbol, boolean> | null)?.[IN_RESERVE] === true;
}
