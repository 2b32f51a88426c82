import type { Queryable } from "../database.js";
import { isoOrNull } from "./columns.js";

/** One `workspace_agent_stats` row to insert. */
export interface AgentStatsRow {
  id: string;
  createdAt: Date;
  userId: string;
  agentId: string;
  workspaceId: string;
  templateId: string | null;
  connectionsByProto: Record<string, number>;
  connectionCount: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  connectionMedianLatencyMs: number;
  sessionCountVscode: number;
  sessionCountJetbrains: number;
  sessionCountReconnectingPty: number;
  sessionCountSsh: number;
  usage: boolean;
  sessionCounts: Record<string, number>;
}

/** Inserts many stats rows in one statement (the stats batcher's flush). */
export async function insertStats(q: Queryable, rows: AgentStatsRow[]): Promise<void> {
  if (rows.length === 0) return;
  const col = <K extends keyof AgentStatsRow>(k: K) => rows.map((r) => r[k]);
  await q.query(
    `INSERT INTO workspace_agent_stats (
       id, created_at, user_id, agent_id, workspace_id, template_id, connections_by_proto, connection_count,
       rx_packets, rx_bytes, tx_packets, tx_bytes, connection_median_latency_ms, session_count_vscode,
       session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh, usage, session_counts)
     SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::jsonb[],
       $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::float8[], $14::bigint[],
       $15::bigint[], $16::bigint[], $17::bigint[], $18::boolean[], $19::jsonb[])`,
    [
      col("id"), rows.map((r) => isoOrNull(r.createdAt)), col("userId"), col("agentId"), col("workspaceId"), col("templateId"),
      rows.map((r) => JSON.stringify(r.connectionsByProto)), col("connectionCount"), col("rxPackets"), col("rxBytes"),
      col("txPackets"), col("txBytes"), col("connectionMedianLatencyMs"), col("sessionCountVscode"),
      col("sessionCountJetbrains"), col("sessionCountReconnectingPty"), col("sessionCountSsh"), col("usage"),
      rows.map((r) => JSON.stringify(r.sessionCounts)),
    ],
  );
}

/** The newest stats row of an agent, if any (for tests and dashboards). */
export async function getLatestStats(q: Queryable, agentId: string): Promise<AgentStatsRow | undefined> {
  const { rows } = await q.query<AgentStatsRow>(
    `SELECT id, created_at AS "createdAt", user_id AS "userId", agent_id AS "agentId", workspace_id AS "workspaceId",
            template_id AS "templateId", connections_by_proto AS "connectionsByProto", connection_count AS "connectionCount",
            rx_packets AS "rxPackets", rx_bytes AS "rxBytes", tx_packets AS "txPackets", tx_bytes AS "txBytes",
            connection_median_latency_ms AS "connectionMedianLatencyMs", session_count_vscode AS "sessionCountVscode",
            session_count_jetbrains AS "sessionCountJetbrains", session_count_reconnecting_pty AS "sessionCountReconnectingPty",
            session_count_ssh AS "sessionCountSsh", usage, session_counts AS "sessionCounts"
     FROM workspace_agent_stats WHERE agent_id = $1 ORDER BY created_at DESC, id LIMIT 1`,
    [agentId],
  );
  return rows[0];
}
