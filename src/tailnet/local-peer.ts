import { create } from "@bufbuild/protobuf";
import { CoordinateResponseSchema, type CoordinateResponse, type CoordinateResponse_PeerUpdate } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import type { PeerIdentity } from "./peer-identity.js";

/** Requests of one peer read ahead of the database writes they cause (Coder's request buffer). */
export const REQUEST_QUEUE = 32;
/** Responses waiting for one peer to read them; past this the peer is dropped (Coder's response buffer). */
export const RESPONSE_QUEUE = 512;
/**
 * The largest node a peer may send, encoded. A real node (keys, a few addresses and endpoints,
 * latencies to a few dozen DERP regions) takes under 2 KiB.
 */
export const MAX_NODE_BYTES = 16 * 1024;
/**
 * Updates per response: a Coordinate message may be at most 4 MiB, and 128 of the largest nodes
 * take 2 MiB, so an agent with thousands of clients gets their nodes over several responses.
 */
const UPDATES_PER_RESPONSE = 128;

/** How a peer's stream ended. */
export type PeerEnd =
  | { kind: "done" }
  /** The stream fails with this error (a refused request). */
  | { kind: "failed"; error: Error };

/**
 * @internal One Coordinate stream on this replica: its bounded response queue, what it was last
 * told about each peer, and the tunnel peers its last read found.
 */
export class LocalPeer {
  /** The last node sent to this peer, per peer id. */
  readonly told = new Map<string, Buffer>();
  /** Peers sharing a tunnel with this one, as last read from the database. */
  tunnelPeers = new Set<string>();
  /** Destinations of tunnels this peer is the source of, as last read. */
  dsts = new Set<string>();
  /** Peer ids whose changes concern this peer (tunnel peers and peers it holds nodes of). */
  interest = new Set<string>();
  /** Set once the peer is removed; the response stream ends after the queue drains. */
  end: PeerEnd | undefined;

  private readonly queue: CoordinateResponse[] = [];
  private wake: (() => void) | undefined;
  private inFlight = 0;
  private slotWaiters: (() => void)[] = [];

  constructor(readonly identity: PeerIdentity) {}

  get id(): string {
    return this.identity.id;
  }

  /** Queues updates in as few responses as the message limit allows. Returns false when the queue is full. */
  sendUpdates(updates: CoordinateResponse_PeerUpdate[]): boolean {
    for (let i = 0; i < updates.length; i += UPDATES_PER_RESPONSE) {
      if (!this.send(create(CoordinateResponseSchema, { peerUpdates: updates.slice(i, i + UPDATES_PER_RESPONSE) }))) return false;
    }
    return true;
  }

  /** Queues one response; false when the queue is full (nothing is queued then). */
  send(res: CoordinateResponse): boolean {
    if (this.end !== undefined) return true;
    if (this.queue.length >= RESPONSE_QUEUE) return false;
    this.queue.push(res);
    this.wake?.();
    return true;
  }

  /**
   * Ends the stream: `final` is queued past the bound (it is the last), `discard` drops what the
   * peer has not read yet (it is not reading).
   */
  finish(end: PeerEnd, opts: { final?: CoordinateResponse; discard?: boolean } = {}): void {
    if (this.end !== undefined) return;
    if (opts.discard) this.queue.length = 0;
    if (opts.final !== undefined) this.queue.push(opts.final);
    this.end = end;
    this.wake?.();
    for (const w of this.slotWaiters.splice(0)) w();
  }

  /** The responses, in order, until the peer ends or `signal` aborts. */
  async *responses(signal: AbortSignal): AsyncGenerator<CoordinateResponse> {
    const onAbort = () => this.wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.end !== undefined || signal.aborted) break;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
      if (this.end?.kind === "failed" && !signal.aborted) throw this.end.error;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Waits for a request slot (at most {@link REQUEST_QUEUE} in flight); false once the peer ended. */
  async acquireSlot(): Promise<boolean> {
    while (this.inFlight >= REQUEST_QUEUE && this.end === undefined) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
    if (this.end !== undefined) return false;
    this.inFlight++;
    return true;
  }

  releaseSlot(): void {
    this.inFlight--;
    this.slotWaiters.shift()?.();
  }
}
