import DataLoader from "dataloader";

/** Options of {@link groupedStatement}. */
export interface GroupedStatementOptions<K, V> {
  /** Keys one statement takes at most; more wait for the next. */
  maxKeys: number;
  /** Statements of this kind in flight at once; keys that arrive meanwhile go together in the next. */
  maxInFlight: number;
  /**
   * The least time from one statement's start to the next one's: under load the keys of that
   * long go together, so the statements per second stay bounded however many callers there are.
   * The first after a quiet spell still goes at once. Default 0.
   */
  minIntervalMs?: number;
  /**
   * Runs one statement for `keys` and answers each, in order: a value, or an Error for that key
   * alone. A throw fails every key of the statement.
   */
  run: (keys: readonly K[]) => Promise<ReadonlyArray<V | Error>>;
}

/**
 * Group commit for a statement many callers run with their own key (a token lookup, a connection
 * write, a NOTIFY): while `maxInFlight` of them are in flight, or until `minIntervalMs` since the
 * last one started, new keys wait and then go as one statement. An idle server runs each key at
 * once (after the current tick, to take its neighbours along); a reconnect storm of thousands of
 * agents costs a few statements per interval instead of one each, so the database work follows
 * time, not agents. No result is cached.
 */
export function groupedStatement<K, V>(options: GroupedStatementOptions<K, V>): (key: K) => Promise<V> {
  if (!(options.maxInFlight >= 1)) throw new RangeError("groupedStatement: maxInFlight must be at least 1");
  const minIntervalMs = options.minIntervalMs ?? 0;
  let inFlight = 0;
  let lastStart = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  /** Batches ready to go (full, or collected since their first key), oldest first. */
  const waiting: Array<() => void> = [];
  /** Starts waiting batches while a slot is free and the interval since the last start allows. */
  const pump = () => {
    while (waiting.length > 0 && inFlight < options.maxInFlight && timer === undefined) {
      const wait = lastStart + minIntervalMs - performance.now();
      if (wait > 0) {
        timer = setTimeout(() => {
          timer = undefined;
          pump();
        }, wait);
        return;
      }
      inFlight++;
      lastStart = performance.now();
      waiting.shift()!();
    }
  };
  const loader = new DataLoader<K, V>(
    async (keys) => {
      try {
        return await options.run(keys);
      } finally {
        inFlight--;
        pump();
      }
    },
    {
      cache: false,
      maxBatchSize: options.maxKeys,
      batchScheduleFn(dispatch) {
        // DataLoader adds the key after scheduling: collect until the next tick at least.
        process.nextTick(() => {
          waiting.push(dispatch);
          pump();
        });
      },
    },
  );
  return (key) => loader.load(key);
}

/**
 * Splits items into rounds in which no key repeats, keeping their order within each key: for a
 * statement that joins on the key (an UPDATE … FROM unnest touches a row once, however many
 * items name it), each round is one statement, run one after the other.
 */
export function roundsByKey<T>(items: readonly T[], key: (item: T) => string): T[][] {
  const rounds: T[][] = [];
  const next = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    const r = next.get(k) ?? 0;
    next.set(k, r + 1);
    (rounds[r] ??= []).push(item);
  }
  return rounds;
}
