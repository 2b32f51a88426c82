/** Counters for logs and metrics; read them, don't write them. */
export interface SessionCounters {
  streamsOpened: number;
  streamsAccepted: number;
  /** Peer SYNs answered with RST: stream limit reached or closing. */
  streamsRefused: number;
  framesIn: FrameCounts;
  framesOut: FrameCounts;
  /** Data payload bytes. */
  bytesIn: number;
  bytesOut: number;
  /** Protocol violations by the peer, session- or stream-level. */
  protocolErrors: number;
  pingsSent: number;
  pingsReceived: number;
}

/** Frames counted by type. */
export interface FrameCounts {
  data: number;
  windowUpdate: number;
  ping: number;
  goAway: number;
}

/** @internal The `FrameCounts` key of each frame type, indexed by the type's number. */
export const FRAME_KEYS = ["data", "windowUpdate", "ping", "goAway"] as const;

/** @internal Counters that start at zero. */
export function newSessionCounters(): SessionCounters {
  return {
    streamsOpened: 0,
    streamsAccepted: 0,
    streamsRefused: 0,
    framesIn: { data: 0, windowUpdate: 0, ping: 0, goAway: 0 },
    framesOut: { data: 0, windowUpdate: 0, ping: 0, goAway: 0 },
    bytesIn: 0,
    bytesOut: 0,
    protocolErrors: 0,
    pingsSent: 0,
    pingsReceived: 0,
  };
}
