import type { AgentTokenRow } from "../auth/authenticate.js";
import type { Database } from "../db/database.js";
import { pendingMigrations } from "../db/migration-status.js";
import { connectAgent, disconnectAgent, getAgentByToken, updateAgentConnections } from "../db/queries/agents.js";
import { getLatestBuild } from "../db/queries/builds.js";
import type { AgentServerStore } from "./agent-server.js";

/** The agent server's database needs, served by the query modules for one replica. */
export function agentServerStore(db: Database, replicaId: string): AgentServerStore {
  return {
    async lookupAgentByToken(token): Promise<AgentTokenRow | undefined> {
      const row = await getAgentByToken(db, token);
      if (row === undefined) return undefined;
      return {
        agentId: row.agent.id,
        agentName: row.agent.name,
        buildId: row.buildId,
        buildNumber: row.buildNumber,
        latestBuildId: row.latestBuildId,
        latestBuildNumber: row.latestBuildNumber,
        workspaceId: row.workspace.id,
        workspaceName: row.workspace.name,
        ownerId: row.owner.id,
        ownerUsername: row.owner.username,
      };
    },
    async connect(agentId, at) {
      const connection = await connectAgent(db, { id: agentId, replicaId, now: at });
      if (connection === undefined) throw new Error("agent was deleted");
      return { generation: connection.connectionGeneration, firstConnectedAt: connection.firstConnectedAt };
    },
    async writeHeartbeats(beats) {
      await updateAgentConnections(
        db,
        beats.map((b) => ({
          id: b.agentId,
          firstConnectedAt: b.connection.firstConnectedAt,
          lastConnectedAt: b.at,
          disconnectedAt: null,
          replicaId,
          updatedAt: b.at,
          generation: b.connection.generation,
        })),
      );
    },
    disconnect(agentId, connection, at) {
      return disconnectAgent(db, { id: agentId, replicaId, generation: connection.generation, disconnectedAt: at });
    },
    async latestBuildId(workspaceId) {
      return (await getLatestBuild(db, workspaceId))?.id;
    },
    async ready() {
      await db.ping();
      const pending = await pendingMigrations(db);
      if (pending.length > 0) throw new Error(`migrations not applied: ${pending.join(", ")}`);
    },
  };
}
