import type { Logger } from "../log.js";
import { groupedStatement } from "./grouped-statement.js";

/**
 * Publish/subscribe over Postgres LISTEN/NOTIFY, the same on both engines.
 *
 * Events carry ids, not data: a subscriber re-reads the database. Subscribe first, then read, so no
 * event falls between the two. When `onError` is called the subscriber may have missed events and
 * should re-read; subscriptions stay active.
 */
export interface Pubsub {
  /** Sends `payload` to every subscriber of `channel`, on every replica. Refuses payloads of 8000 bytes or more. */
  publish(channel: string, payload: string | Buffer): Promise<void>;
  /**
   * Delivers each event on `channel` to `onEvent`, in order, one at a time (a returned promise is
   * awaited before the next event). Resolves once the LISTEN is in place, with a function that
   * unsubscribes. `onError` receives {@link PubsubDroppedEventsError} or {@link PubsubListenerLostError}.
   */
  subscribe(
    channel: string,
    onEvent: (payload: Buffer) => void | Promise<void>,
    onError: (err: Error) => void,
  ): Promise<() => void>;
  /**
   * Whether events are being received right now: false from the moment the LISTEN connection is
   * lost until it is back and listening again. While false, a subscriber that trusts what events
   * told it must re-read the database instead.
   */
  isListening(): boolean;
}

/** Postgres refuses NOTIFY payloads of 8000 bytes or more (`NOTIFY_PAYLOAD_MAX_LENGTH`). */
export const MAX_PAYLOAD_BYTES = 7999;
/** Channel names are identifiers: at most NAMEDATALEN − 1 bytes, else Postgres truncates them. */
export const MAX_CHANNEL_BYTES = 63;
/** Events waiting per subscriber before new ones are dropped; Coder's pubsub uses the same bound. */
export const DEFAULT_SUBSCRIBER_QUEUE = 2048;

/** A payload or channel name that NOTIFY cannot carry. */
export class PubsubPayloadError extends Error {
  override name = "PubsubPayloadError";
}

/** The subscriber's queue was full and `count` events were dropped: re-read the database. */
export class PubsubDroppedEventsError extends Error {
  override name = "PubsubDroppedEventsError";
  constructor(readonly count: number) {
    super(`pubsub: subscriber too slow, ${count} event(s) dropped`);
  }
}

/** The LISTEN connection was lost and has been re-established: events in between may be missed. */
export class PubsubListenerLostError extends Error {
  override name = "PubsubListenerLostError";
  constructor(cause?: unknown) {
    super("pubsub: listener connection was lost and re-established; events may have been missed", { cause });
  }
}

/**
 * @internal What an engine provides to {@link NotifyPubsub}: LISTEN/UNLISTEN on its listener
 * connection and NOTIFY on any connection.
 */
/** One NOTIFY. */
export interface Notification {
  channel: string;
  payload: string;
}

/** The statement that sends many notifications at once, in order: channels in $1, payloads in $2. */
export const NOTIFY_ALL_SQL = "SELECT pg_notify(n.channel, n.payload) FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS n(channel, payload, i) ORDER BY n.i";

/** {@link NOTIFY_ALL_SQL}'s parameters. */
export function notifyAllParams(notifications: readonly Notification[]): [string[], string[]] {
  return [notifications.map((n) => n.channel), notifications.map((n) => n.payload)];
}

/**
 * Notifications one statement sends at most (each payload is at most 8000 bytes, most are under
 * 200): with one statement per interval, 10,000 a second per process.
 */
const MAX_NOTIFICATIONS_PER_STATEMENT = 1_000;
/**
 * Under load, publishes go out at most every this long (≤ 10 statements/s per process), so a
 * fleet's stats reports and connection changes cost the database a bounded rate, not one
 * statement each: at 25 ms, two workers holding 20,000 agents sent 67 NOTIFY statements a second,
 * most of the database's transactions. An idle process publishes at once.
 */
const NOTIFY_INTERVAL_MS = 100;

/**
 * Splits notifications into runs with no repeat inside, in order: each run is one statement, so
 * PostgreSQL folds none of them and listeners see every one, in the order published.
 */
function runsWithoutRepeats(notifications: readonly Notification[]): Notification[][] {
  const runs: Notification[][] = [];
  let run: Notification[] = [];
  let seen = new Set<string>();
  for (const n of notifications) {
    const key = `${n.channel}\u0000${n.payload}`;
    if (seen.has(key)) {
      runs.push(run);
      run = [];
      seen = new Set();
    }
    seen.add(key);
    run.push(n);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

export interface NotifyTransport {
  listen(channel: string): Promise<void>;
  unlisten(channel: string): Promise<void>;
  /**
   * Sends the notifications in one statement, in order. Identical ones in one statement would be
   * delivered once (PostgreSQL folds them within a transaction): the caller never passes those.
   */
  notifyAll(notifications: readonly Notification[]): Promise<void>;
  /** See {@link Pubsub.isListening}; an engine whose listener cannot be lost leaves it out. */
  isListening?(): boolean;
}

type QueueItem = Buffer | { dropped: number } | { lost: Error };

/** One subscription: a bounded queue drained in order into the callbacks. */
class Subscriber {
  private readonly queue: QueueItem[] = [];
  private draining = false;
  closed = false;

  constructor(
    private readonly onEvent: (payload: Buffer) => void | Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly maxQueue: number,
    private readonly logger: Logger,
  ) {}

  push(payload: Buffer): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      // One marker slot past the bound counts every drop of this overflow, so memory stays bounded
      // and the subscriber learns, in order, that it must re-read.
      const tail = this.queue[this.queue.length - 1];
      if (tail !== undefined && !Buffer.isBuffer(tail) && "dropped" in tail) tail.dropped++;
      else this.queue.push({ dropped: 1 });
      return;
    }
    this.queue.push(payload);
    this.drain();
  }

  lost(err: Error): void {
    if (this.closed) return;
    const tail = this.queue[this.queue.length - 1];
    if (tail !== undefined && !Buffer.isBuffer(tail) && "lost" in tail) return;
    this.queue.push({ lost: err });
    this.drain();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    // Deliver asynchronously so a publisher or the notification handler never runs subscriber code.
    queueMicrotask(() => void this.run());
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const item = this.queue.shift();
      if (item === undefined) break;
      try {
        if (Buffer.isBuffer(item)) await this.onEvent(item);
        else if ("dropped" in item) this.onError(new PubsubDroppedEventsError(item.dropped));
        else this.onError(item.lost);
      } catch (err) {
        this.logger.warn({ err }, "pubsub subscriber callback failed");
      }
    }
    this.draining = false;
  }
}

/**
 * @internal The engine-independent half of pubsub: subscriber bookkeeping, payload checks, bounded
 * queues. Engines hand it a {@link NotifyTransport} and call {@link deliver} and
 * {@link listenerRestored}.
 */
export class NotifyPubsub implements Pubsub {
  private readonly channels = new Map<string, { subs: Set<Subscriber>; listening: Promise<void> }>();
  /**
   * Publishes go out grouped: one statement at a time (so they reach listeners in the order
   * published), with whatever was published while the last one ran. Each connect, disconnect and
   * stats report publishes; one statement each would be most of the database's work in a fleet.
   */
  private readonly notify = groupedStatement<Notification, undefined>({
    maxKeys: MAX_NOTIFICATIONS_PER_STATEMENT,
    maxInFlight: 1,
    minIntervalMs: NOTIFY_INTERVAL_MS,
    run: async (notifications) => {
      for (const run of runsWithoutRepeats(notifications)) await this.transport.notifyAll(run);
      return notifications.map(() => undefined);
    },
  });

  constructor(
    private readonly transport: NotifyTransport,
    private readonly logger: Logger,
    private readonly maxQueue = DEFAULT_SUBSCRIBER_QUEUE,
  ) {}

  async publish(channel: string, payload: string | Buffer): Promise<void> {
    checkChannel(channel);
    const text = typeof payload === "string" ? payload : payload.toString("utf8");
    const bytes = Buffer.byteLength(text);
    if (bytes > MAX_PAYLOAD_BYTES) {
      throw new PubsubPayloadError(`pubsub: payload of ${bytes} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte NOTIFY limit`);
    }
    await this.notify({ channel, payload: text });
  }

  async subscribe(
    channel: string,
    onEvent: (payload: Buffer) => void | Promise<void>,
    onError: (err: Error) => void,
  ): Promise<() => void> {
    checkChannel(channel);
    const sub = new Subscriber(onEvent, onError, this.maxQueue, this.logger);
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = { subs: new Set(), listening: this.transport.listen(channel) };
      this.channels.set(channel, entry);
    }
    entry.subs.add(sub);
    try {
      await entry.listening;
    } catch (err) {
      this.remove(channel, sub);
      throw err;
    }
    return () => this.remove(channel, sub);
  }

  isListening(): boolean {
    return this.transport.isListening?.() ?? true;
  }

  /** Channels with at least one subscriber: what a re-established listener must LISTEN to again. */
  activeChannels(): string[] {
    return [...this.channels.keys()];
  }

  /** Hands one NOTIFY to every subscriber of its channel. */
  deliver(channel: string, payload: string): void {
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    const buf = Buffer.from(payload, "utf8");
    for (const sub of entry.subs) sub.push(buf);
  }

  /**
   * Tells every subscriber it may have missed events. Called after the listener is back and
   * listening again, so that a subscriber re-reading the database on this error misses nothing.
   */
  listenerRestored(err: Error): void {
    for (const entry of this.channels.values()) for (const sub of entry.subs) sub.lost(err);
  }

  /** Stops every delivery; used when the database closes. */
  closeAll(): void {
    for (const entry of this.channels.values()) for (const sub of entry.subs) sub.closed = true;
    this.channels.clear();
  }

  private remove(channel: string, sub: Subscriber): void {
    sub.closed = true;
    const entry = this.channels.get(channel);
    if (entry === undefined || !entry.subs.delete(sub) || entry.subs.size > 0) return;
    this.channels.delete(channel);
    this.transport.unlisten(channel).catch((err: unknown) => this.logger.warn({ err, channel }, "pubsub UNLISTEN failed"));
  }
}

function checkChannel(channel: string): void {
  const bytes = Buffer.byteLength(channel);
  if (bytes === 0 || bytes > MAX_CHANNEL_BYTES) {
    throw new PubsubPayloadError(`pubsub: channel name must be 1–${MAX_CHANNEL_BYTES} bytes, got ${bytes}`);
  }
}

/** @internal Quotes a channel name as an SQL identifier for LISTEN/UNLISTEN. */
export function quoteChannel(channel: string): string {
  return `"${channel.replace(/"/g, '""')}"`;
}
