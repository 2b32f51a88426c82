import type { LookupAgentByToken } from "../auth/authenticate.js";
import type { Database } from "../db/database.js";
import { loadMigrations, type Migration } from "../db/migrate.js";
import { pendingMigrations } from "../db/migration-status.js";
import { groupedStatement, roundsByKey } from "../db/grouped-statement.js";
import { connectAgents, disconnectAgents, endedConnections, refreshAgentConnections, type ConnectionEnd, type ConnectionRefresh } from "../db/queries/agent-connections.js";
import { getTokenAgents } from "../db/queries/agent-tokens.js";
import type { ConnectionStore } from "../tracker/connection-tracker.js";

/** What the agent server needs from the database, for one replica. */
export interface AgentServerStore extends Omit<ConnectionStore, "refresh"> {
  lookupAgentByToken: LookupAgentByToken;
  /**
   * Writes many agents' connection-time refreshes in one statement; calls `onSuperseded` of each
   * refused one whose row records an ended connection.
   */
  writeHeartbeats(refreshes: ConnectionRefresh[]): Promise<void>;
  /** Resolves when the database answers and is migrated; for /readyz. */
  ready(): Promise<void>;
}

/** Keys of one grouped statement: a dial's token or connection write. */
const MAX_KEYS_PER_STATEMENT = 500;
/** Grouped statements of one kind in flight: leaves most of the pool to RPCs in a reconnect storm. */
const MAX_STATEMENTS_IN_FLIGHT = 2;
/** Under load, a dial's statements of one kind go at most every this long (a dial waits that much more at worst). */
const STATEMENT_INTERVAL_MS = 10;

/** Runs `run` once per round of `items` in which no agent repeats, and answers each item in order. */
async function inRounds<T, V>(items: readonly T[], id: (item: T) => string, run: (round: T[]) => Promise<V[]>): Promise<V[]> {
  const answers = new Map<T, V>();
  for (const round of roundsByKey(items, id)) {
    const values = await run(round);
    round.forEach((item, i) => answers.set(item, values[i]!));
  }
  return items.map((item) => answers.get(item)!);
}

/**
 * The agent server's database needs, served by the query modules for one replica. A dial's
 * statements (its token lookup, its connect and disconnect writes) are grouped across agents, so a
 * reconnect storm of thousands costs a few statements per round trip.
 */
export function agentServerStore(db: Database, replicaId: string): AgentServerStore {
  // The migration files don't change while the process runs: read them on the first probe only.
  let migrations: Promise<Migration[]> | undefined;
  const grouped = { maxKeys: MAX_KEYS_PER_STATEMENT, maxInFlight: MAX_STATEMENTS_IN_FLIGHT, minIntervalMs: STATEMENT_INTERVAL_MS };
  const lookup = groupedStatement<string, Awaited<ReturnType<LookupAgentByToken>>>({ ...grouped, run: (tokens) => getTokenAgents(db, tokens) });
  const connect = groupedStatement<{ id: string; now: Date }, Awaited<ReturnType<typeof connectAgents>>[number]>({
    ...grouped,
    run: (items) => inRounds(items, (i) => i.id, (round) => connectAgents(db, replicaId, round)),
  });
  const disconnect = groupedStatement<ConnectionEnd, boolean>({
    ...grouped,
    run: (ends) => inRounds(ends, (e) => e.id, (round) => disconnectAgents(db, replicaId, round)),
  });
  return {
    lookupAgentByToken: lookup,
    async connect(agentId, at) {
      const connection = await connect({ id: agentId, now: at });
      if (connection === undefined) throw new Error("agent was deleted");
      // The tracker keeps this for the connection's life: only the guard, not the row's dates.
      return { connectionGeneration: connection.connectionGeneration, disconnectedAt: connection.disconnectedAt };
    },
    async writeHeartbeats(refreshes) {
      // Background work: its own pool, so a large flush never delays an RPC.
      const written = new Set(await refreshAgentConnections(db.background, replicaId, refreshes));
      // An agent given twice was written with its last refresh: only that one can be refused.
      const last = new Map<string, ConnectionRefresh>();
      for (const r of refreshes) last.set(r.agentId, r);
      const refused = [...last.values()].filter((r) => !written.has(r.agentId) && r.onSuperseded !== undefined);
      // Rare (a stale dial of a connected agent): a second statement only when some were refused.
      for (const id of await endedConnections(db.background, refused.map((r) => r.agentId))) last.get(id)!.onSuperseded!();
    },
    disconnect(agentId, connection, at) {
      return disconnect({ id: agentId, generation: connection.connectionGeneration, disconnectedAt: at });
    },
    async ready() {
      await db.ping();
      const pending = await pendingMigrations(db, await (migrations ??= loadMigrations()));
      if (pending.length > 0) throw new Error(`migrations not applied: ${pending.join(", ")}`);
    },
  };
}
