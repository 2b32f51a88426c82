/**
 * What PostgreSQL itself says about a database over a span of time: statements (transactions
 * committed: every statement the server sends outside a transaction is one), time spent executing
 * them, rows written, and the CPU of the postgres processes on this machine. Read from
 * pg_stat_database because pg_stat_statements needs shared_preload_libraries (a restart).
 *
 * PostgreSQL 15 backends publish their counters when they go idle, at most once a second (an idle
 * one may sit on its last second for up to 10 s), so a span of many seconds is exact to about a
 * second's worth of statements at each end.
 */
import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** One reading; subtract two with {@link pgDelta}. */
export interface PgReading {
  at: number;
  xactCommit: number;
  xactRollback: number;
  /** ms spent executing statements in this database (PostgreSQL ≥ 14). */
  activeMs: number;
  tupInserted: number;
  tupUpdated: number;
  /** Per postgres process: CPU µs. */
  cpu: Map<number, number>;
}

/** Reads the counters of database `name` through `admin` (a connection to another database). */
export async function readPg(admin: pg.Client, name: string): Promise<PgReading> {
  const { rows } = await admin.query<{ xact_commit: string; xact_rollback: string; active_time: number; tup_inserted: string; tup_updated: string }>(
    "SELECT xact_commit, xact_rollback, active_time, tup_inserted, tup_updated FROM pg_stat_database WHERE datname = $1",
    [name],
  );
  const r = rows[0]!;
  return {
    at: performance.now(),
    xactCommit: Number(r.xact_commit),
    xactRollback: Number(r.xact_rollback),
    activeMs: Number(r.active_time),
    tupInserted: Number(r.tup_inserted),
    tupUpdated: Number(r.tup_updated),
    cpu: postgresCpu(),
  };
}

/**
 * The span between two readings. `cpuCores`: postgres CPU as cores busy (0 if its processes aren't
 * visible); a process first seen in `b` (a pool connection opened meanwhile) counts whole.
 */
export function pgDelta(a: PgReading, b: PgReading) {
  const seconds = (b.at - a.at) / 1000;
  let cpu = 0;
  for (const [pid, us] of b.cpu) cpu += us - (a.cpu.get(pid) ?? 0);
  return {
    seconds,
    statements: b.xactCommit + b.xactRollback - a.xactCommit - a.xactRollback,
    activeMs: b.activeMs - a.activeMs,
    inserted: b.tupInserted - a.tupInserted,
    updated: b.tupUpdated - a.tupUpdated,
    cpuCores: cpu / 1e6 / seconds,
  };
}

/** CPU µs of every process named postgres we can see (one that exited in between is missed). */
function postgresCpu(): Map<number, number> {
  const out = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      out.set(Number(pid), ((Number(fields[11]) + Number(fields[12])) * 1e6) / USER_HZ);
    } catch {
      // Gone since the listing.
    }
  }
  return out;
}
