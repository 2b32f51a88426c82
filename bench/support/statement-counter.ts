/**
 * Counts the statements a server sends, by kind, with the time each kind spent from the call to
 * its answer (pool wait + network + PostgreSQL). Benchmarks wrap the server's database in
 * {@link countedDatabase} and compare these figures with PostgreSQL's own counters.
 */
import type { Database, Queryable } from "../../src/db/database.js";

/** Statement kinds, recognised by their SQL; the first match wins. */
export const STATEMENT_KINDS: [string, RegExp][] = [
  ["agent re-read (per RPC)", /FROM workspace_agents a WHERE a\.id = \$1 AND NOT a\.deleted/],
  ["auth lookup (per dial)", /WHERE a\.auth_token = \$1/],
  ["logs insert", /WITH new_length AS|WITH caller AS/],
  ["metadata flush", /WITH updated AS \(\s*INSERT INTO workspace_agent_metadata AS m/],
  ["stats flush", /INSERT INTO workspace_agent_stats/],
  ["usage flush", /UPDATE workspaces SET last_used_at/],
  ["heartbeat flush", /FROM unnest\(\$1::uuid\[\], \$2::timestamptz\[\]/],
  ["connect/disconnect", /UPDATE workspace_agents SET/],
  // The outdated-build check each connected agent makes every --agent-update-interval (15 s).
  ["latest build (per agent, 15 s)", /FROM workspace_builds b\s+WHERE b\.workspace_id = \$1 ORDER BY b\.build_number DESC LIMIT 1/],
];

/** Characters of an unknown statement kept as its kind's name. */
const OTHER_PREFIX = 48;

/** Per kind: statements sent and the milliseconds they took, call to answer. */
export type StatementCounts = Record<string, { n: number; ms: number }>;

/** The running tally; `snapshot()` is what crosses the IPC channel. */
export class StatementCounter {
  private readonly counts: StatementCounts = {};
  /** Statements sent and not yet answered, now and at most. */
  inFlight = 0;
  maxInFlight = 0;

  start(sql: string): () => void {
    // An unknown statement is named by its first words, so a new kind shows up in the table.
    const kind = STATEMENT_KINDS.find(([, re]) => re.test(sql))?.[0] ?? `other: ${sql.replace(/\s+/g, " ").trim().slice(0, OTHER_PREFIX)}`;
    const t0 = performance.now();
    this.inFlight++;
    if (this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    return () => {
      this.inFlight--;
      const c = (this.counts[kind] ??= { n: 0, ms: 0 });
      c.n++;
      c.ms += performance.now() - t0;
    };
  }

  /** A copy, and the in-flight peak since the last snapshot (then reset). */
  snapshot(): { counts: StatementCounts; maxInFlight: number } {
    const counts = structuredClone(this.counts);
    const maxInFlight = this.maxInFlight;
    this.maxInFlight = this.inFlight;
    return { counts, maxInFlight };
  }
}

/** `db` with every `query` counted (transactions are not: the agent API doesn't use them on hot paths). */
export function countedDatabase(db: Database, counter: StatementCounter): Database {
  const counted = (target: Queryable) => async (sql: string, params?: unknown[]) => {
    const done = counter.start(sql);
    try {
      return await target.query(sql, params);
    } finally {
      done();
    }
  };
  // The background pool's statements (sweeps, heartbeat flushes) count too.
  const background = { query: counted(db.background) } as Queryable;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === "query") return counted(target);
      if (prop === "background") return background;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
