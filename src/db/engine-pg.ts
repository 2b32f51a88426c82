import pg from "pg";
import { backoffDelay, DEFAULT_BACKOFF } from "../backoff.js";
import type { Logger } from "../log.js";
import type { Database, OpenDatabaseOptions, Transaction } from "./database.js";
import { NOTIFY_ALL_SQL, notifyAllParams, NotifyPubsub, PubsubListenerLostError, quoteChannel, type NotifyTransport } from "./pubsub.js";
import { pgTypeOverrides } from "./type-parsers.js";

/** The listener connection's application_name, so operators (and tests) can find it in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = "agentgate-listener";
const DEFAULT_POOL_SIZE = 10;
/** Connections of the background pool: sweeps and batched writes run one statement at a time. */
const BACKGROUND_POOL_SIZE = 2;
/**
 * pg waits forever for a connection by default: while PostgreSQL is unreachable every statement
 * would hang instead of failing, and so would the RPCs waiting on them.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/** @internal PostgreSQL through a `pg` pool; see `openDatabase`. */
export async function openPgDatabase(
  opts: OpenDatabaseOptions & { databaseUrl: string; logger: Logger },
): Promise<Database> {
  const types = pgTypeOverrides();
  const connectionTimeoutMillis = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const newPool = (max: number, applicationName: string) => {
    const made = new pg.Pool({ connectionString: opts.databaseUrl, max, application_name: applicationName, types, connectionTimeoutMillis } as pg.PoolConfig);
    // An idle client that dies (server restart, pg_terminate_backend) must not crash the process.
    made.on("error", (err) => opts.logger.warn({ err }, "idle database connection failed"));
    return made;
  };
  const pool = newPool(opts.poolSize ?? DEFAULT_POOL_SIZE, "agentgate");
  const backgroundPool = newPool(BACKGROUND_POOL_SIZE, "agentgate-background");

  const listener = new PgListener(opts.databaseUrl, types, opts.logger, connectionTimeoutMillis);
  const pubsub = new NotifyPubsub(
    {
      listen: (ch) => listener.run(`LISTEN ${quoteChannel(ch)}`),
      unlisten: (ch) => listener.run(`UNLISTEN ${quoteChannel(ch)}`),
      notifyAll: async (notifications) => {
        await pool.query(NOTIFY_ALL_SQL, notifyAllParams(notifications));
      },
      isListening: () => listener.listening,
    } satisfies NotifyTransport,
    opts.logger,
    opts.subscriberQueue,
  );
  listener.pubsub = pubsub;
  try {
    await listener.start();
  } catch (err) {
    await Promise.all([pool.end(), backgroundPool.end()]);
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    engine: "pg",
    pubsub,
    async query<R>(sql: string, params?: unknown[]) {
      return toResult<R>(await pool.query(sql, params));
    },
    background: {
      async query<R>(sql: string, params?: unknown[]) {
        return toResult<R>(await backgroundPool.query(sql, params));
      },
    },
    async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      const tx: Transaction = {
        async query<R>(sql: string, params?: unknown[]) {
          return toResult<R>(await client.query(sql, params));
        },
        async exec(sql: string) {
          await client.query(sql);
        },
      };
      try {
        await client.query("BEGIN");
        const result = await fn(tx);
        await client.query("COMMIT");
        client.release();
        return result;
      } catch (err) {
        // A connection that cannot even roll back is destroyed rather than returned to the pool.
        await client.query("ROLLBACK").then(
          () => client.release(),
          (rollbackErr: Error) => client.release(rollbackErr),
        );
        throw err;
      }
    },
    async ping() {
      await pool.query("SELECT 1");
    },
    close() {
      closed ??= (async () => {
        pubsub.closeAll();
        await listener.close();
        await Promise.all([pool.end(), backgroundPool.end()]);
      })();
      return closed;
    },
  };
}

/** pg answers a parameterless multi-statement string with one result per statement; keep the last. */
function toResult<R>(r: pg.QueryResult | pg.QueryResult[]): { rows: R[]; rowCount: number } {
  const last = Array.isArray(r) ? r[r.length - 1]! : r;
  return { rows: last.rows as R[], rowCount: last.rowCount ?? last.rows.length };
}

/**
 * The dedicated LISTEN connection. When it drops it reconnects with jittered exponential backoff (agents' range),
 * LISTENs to every active channel again, and only then tells subscribers they may have missed
 * events (so their re-read happens while listening).
 */
class PgListener {
  pubsub!: NotifyPubsub;
  /** True while connected and LISTENing to every active channel: events are arriving. */
  listening = false;
  private client: pg.Client | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /**
   * The statements sent on the listener, chained: pg queues overlapping queries on one client
   * itself, but deprecates doing so (a DeprecationWarning at the first overlap).
   */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly url: string,
    private readonly types: ReturnType<typeof pgTypeOverrides>,
    private readonly logger: Logger,
    private readonly connectionTimeoutMillis: number,
  ) {}

  async start(): Promise<void> {
    this.client = await this.connect();
    this.listening = true;
  }

  /** Runs LISTEN/UNLISTEN now; while reconnecting it is a no-op, since reconnect LISTENs to all active channels. */
  async run(sql: string): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    try {
      await this.send(client, sql);
    } catch (err) {
      if (this.client === client) throw err;
      // The connection died under us; the reconnect covers this channel.
    }
  }

  /** Sends one statement after every earlier one on the listener has finished. */
  private send(client: pg.Client, sql: string): Promise<unknown> {
    const sent = this.queue.then(() => client.query(sql));
    this.queue = sent.catch(() => undefined);
    return sent;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.url, application_name: LISTENER_APPLICATION_NAME, types: this.types, connectionTimeoutMillis: this.connectionTimeoutMillis,
    } as pg.ClientConfig);
    const onLost = (err?: Error) => this.lost(client, err);
    client.on("error", onLost);
    client.on("end", () => onLost());
    client.on("notification", (msg) => this.pubsub.deliver(msg.channel, msg.payload ?? ""));
    await client.connect();
    return client;
  }

  private lost(client: pg.Client, err?: Error): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    this.logger.warn({ err }, "pubsub listener connection lost; reconnecting");
    client.end().catch(() => undefined);
    this.schedule(err);
  }

  private schedule(cause?: Error): void {
    this.timer = setTimeout(() => void this.reconnect(cause), backoffDelay(this.attempt++, DEFAULT_BACKOFF));
  }

  private async reconnect(cause?: Error): Promise<void> {
    if (this.closed) return;
    let client: pg.Client;
    try {
      client = await this.connect();
    } catch (err) {
      this.logger.warn({ err }, "pubsub listener reconnect failed");
      this.schedule(cause);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    // Installed before re-LISTENing so a subscribe arriving meanwhile LISTENs on it (queued after).
    this.client = client;
    this.queue = Promise.resolve();
    try {
      const channels = this.pubsub.activeChannels();
      if (channels.length > 0) await this.send(client, channels.map((ch) => `LISTEN ${quoteChannel(ch)};`).join(" "));
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (this.client !== client) return;
    this.attempt = 0;
    this.listening = true;
    this.logger.info("pubsub listener reconnected");
    this.pubsub.listenerRestored(new PubsubListenerLostError(cause));
  }
}
