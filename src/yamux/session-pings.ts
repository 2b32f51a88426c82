import { randomInt } from "node:crypto";
import { MAX_UINT32 } from "./frame.js";

interface PendingPing {
  started: number;
  resolve: (rttMs: number) => void;
  reject: (error: Error) => void;
}

/**
 * @internal The session's pings in flight: each gets a random opaque id the peer echoes, and
 * resolves with the round trip when its ACK comes back; an ACK the peer sends unasked can't
 * guess one. The map exists only while pings are out.
 */
export class PendingPings {
  private pending: Map<number, PendingPing> | undefined;

  /** Registers a ping; returns its id (to send) and the promise of its round trip in milliseconds. */
  start(): { id: number; rtt: Promise<number> } {
    let id: number;
    do id = randomInt(0, MAX_UINT32 + 1);
    while (this.pending?.has(id));
    const rtt = new Promise<number>((resolve, reject) => {
      (this.pending ??= new Map()).set(id, { started: performance.now(), resolve, reject });
    });
    return { id, rtt };
  }

  /** The peer's ACK of ping `id`; an unknown id (never sent, or already answered) is ignored. */
  answered(id: number): void {
    const ping = this.pending?.get(id);
    if (ping === undefined) return;
    this.pending!.delete(id);
    ping.resolve(performance.now() - ping.started);
  }

  /** Fails every ping still out (the session ended). */
  failAll(error: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    for (const ping of pending?.values() ?? []) ping.reject(error);
  }
}
