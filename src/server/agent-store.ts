import type { LookupAgentByToken } from "../auth/authenticate.js";
import type { Database } from "../db/database.js";
import { loadMigrations, type Migration } from "../db/migrate.js";
import { pendingMigrations } from "../db/migration-status.js";
import { connectAgent, disconnectAgent, refreshAgentConnections, type ConnectionRefresh } from "../db/queries/agent-connections.js";
import { getTokenAgent } from "../db/queries/agent-tokens.js";
import type { ConnectionStore } from "../tracker/connection-tracker.js";

/** What the agent server needs from the database, for one replica. */
export interface AgentServerStore extends Omit<ConnectionStore, "refresh"> {
  lookupAgentByToken: LookupAgentByToken;
  /** Writes many agents' connection-time refreshes in one statement. */
  writeHeartbeats(refreshes: ConnectionRefresh[]): Promise<void>;
  /** Resolves when the database answers and is migrated; for /readyz. */
  ready(): Promise<void>;
}

/** The agent server's database needs, served by the query modules for one replica. */
export function agentServerStore(db: Database, replicaId: string): AgentServerStore {
  // The migration files don't change while the process runs: read them on the first probe only.
  let migrations: Promise<Migration[]> | undefined;
  return {
    lookupAgentByToken: (token) => getTokenAgent(db, token),
    async connect(agentId, at) {
      const connection = await connectAgent(db, { id: agentId, replicaId, now: at });
      if (connection === undefined) throw new Error("agent was deleted");
      // The tracker keeps this for the connection's life: only the guard, not the row's dates.
      return { connectionGeneration: connection.connectionGeneration, disconnectedAt: connection.disconnectedAt };
    },
    async writeHeartbeats(refreshes) {
      // Background work: its own pool, so a large flush never delays an RPC.
      await refreshAgentConnections(db.background, replicaId, refreshes);
    },
    disconnect(agentId, connection, at) {
      return disconnectAgent(db, { id: agentId, replicaId, generation: connection.connectionGeneration, disconnectedAt: at });
    },
    async ready() {
      await db.ping();
      const pending = await pendingMigrations(db, await (migrations ??= loadMigrations()));
      if (pending.length > 0) throw new Error(`migrations not applied: ${pending.join(", ")}`);
    },
  };
}
