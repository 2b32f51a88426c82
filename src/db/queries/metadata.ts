import type { Queryable } from "../database.js";
import { AGENT_METADATA_BATCH_CHANNEL, AGENT_METADATA_CHANNEL_PREFIX } from "../events.js";
import { isoOrNull } from "./columns.js";

/**
 * A metadata item: a description from the provisioner (`workspace_agent_metadata_descriptions`, a
 * logged table) plus its latest result (`workspace_agent_metadata`, unlogged; empty until the
 * first report).
 */
export interface AgentMetadata {
  workspaceAgentId: string;
  displayName: string;
  key: string;
  script: string;
  value: string;
  error: string;
  /** Seconds (the manifest carries them as the nanos of a Duration, as Coder does). */
  timeout: number;
  /** Seconds. */
  interval: number;
  collectedAt: Date;
  displayOrder: number;
}

/** A description as the provisioner creates it. */
export interface MetadataDescription {
  key: string;
  displayName: string;
  script: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  displayOrder?: number;
}

/** Declares an agent's metadata keys (only the provisioner does; agents may only report values of declared keys). */
export async function insertMetadataDescriptions(q: Queryable, agentId: string, items: MetadataDescription[]): Promise<void> {
  if (items.length === 0) return;
  await q.query(
    `INSERT INTO workspace_agent_metadata_descriptions (workspace_agent_id, key, display_name, script, interval, timeout, display_order)
     SELECT $1::uuid, u.key, u.display_name, u.script, u.interval, u.timeout, u.display_order
     FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::int[])
       AS u(key, display_name, script, interval, timeout, display_order)`,
    [
      agentId, items.map((m) => m.key), items.map((m) => m.displayName), items.map((m) => m.script),
      items.map((m) => m.intervalSeconds), items.map((m) => m.timeoutSeconds), items.map((m, i) => m.displayOrder ?? i),
    ],
  );
}

/** Every metadata item of an agent, by display order; a key never reported has an empty value collected at year 1. */
export async function listMetadata(q: Queryable, agentId: string): Promise<AgentMetadata[]> {
  const { rows } = await q.query<AgentMetadata>(
    `SELECT d.workspace_agent_id AS "workspaceAgentId", d.display_name AS "displayName", d.key, d.script,
            coalesce(v.value, '') AS value, coalesce(v.error, '') AS error, d.timeout, d.interval,
            coalesce(v.collected_at, '0001-01-01 00:00:00+00') AS "collectedAt", d.display_order AS "displayOrder"
     FROM workspace_agent_metadata_descriptions d
     LEFT JOIN workspace_agent_metadata v ON v.workspace_agent_id = d.workspace_agent_id AND v.key = d.key
     WHERE d.workspace_agent_id = $1 ORDER BY d.display_order, d.key`,
    [agentId],
  );
  return rows;
}

/** One reported metadata result. */
export interface MetadataUpdate {
  agentId: string;
  key: string;
  value: string;
  error: string;
  collectedAt: Date;
}

/**
 * Most agent ids per `workspace_agent_metadata_batch` payload: each id costs 40 bytes of JSON
 * (`"<36>", `), so 180 of them stay well under NOTIFY's 8000-byte limit.
 */
export const METADATA_BATCH_IDS_PER_NOTIFY = 180;

/**
 * Bytes of JSON keys per `workspace_agent_metadata:<agent>` payload before the next key starts a
 * new one: BatchUpdateMetadata's own per-call key budget. A chunk may pass it by one key (at most
 * 127 characters, 765 bytes escaped), which with `collected_at` still stays under 8000 bytes.
 */
export const METADATA_KEY_BYTES_PER_NOTIFY = 6144;

/**
 * The metadata batcher's flush as one statement: the upsert of the values (newest collectedAt wins
 * per agent+key; keys without a description are ignored), and in the same statement the events of the agents whose rows
 * changed: `{"collected_at", "keys"}` on `workspace_agent_metadata:<agent>` per agent (split in
 * the rare case its keys pass {@link METADATA_KEY_BYTES_PER_NOTIFY}), and `{"agent_ids": [...]}`
 * on `workspace_agent_metadata_batch` per chunk of {@link METADATA_BATCH_IDS_PER_NOTIFY} agents.
 * Returns the rows updated and the agents notified.
 */
export async function updateMetadataAndNotify(q: Queryable, updates: MetadataUpdate[]): Promise<{ rowsUpdated: number; agentIds: string[] }> {
  const latest = new Map<string, MetadataUpdate>();
  for (const u of updates) {
    const k = `${u.agentId}\u0000${u.key}`;
    const prev = latest.get(k);
    if (prev === undefined || prev.collectedAt.getTime() <= u.collectedAt.getTime()) latest.set(k, u);
  }
  if (latest.size === 0) return { rowsUpdated: 0, agentIds: [] };
  const list = [...latest.values()];
  const { rows } = await q.query<{ rowsUpdated: number; agentIds: string[] }>(
    `WITH updated AS (
       INSERT INTO workspace_agent_metadata AS m (workspace_agent_id, key, value, error, collected_at)
       SELECT u.agent_id, u.key, u.value, u.error, u.collected_at
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(agent_id, key, value, error, collected_at)
       JOIN workspace_agent_metadata_descriptions d ON d.workspace_agent_id = u.agent_id AND d.key = u.key
       -- Rows in one order in every statement: two flushes of overlapping agents can't deadlock.
       ORDER BY u.agent_id, u.key
       ON CONFLICT (workspace_agent_id, key) DO UPDATE SET value = excluded.value, error = excluded.error, collected_at = excluded.collected_at
       RETURNING m.workspace_agent_id, m.key, m.collected_at
     ), agents AS (
       SELECT DISTINCT workspace_agent_id AS id FROM updated
     ), chunks AS (
       SELECT json_build_object('agent_ids', json_agg(id ORDER BY id))::text AS payload, array_agg(id) AS ids
       FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / $6 AS chunk FROM agents) numbered
       GROUP BY chunk
     ), notified AS (
       SELECT ids, pg_notify($7, payload) FROM chunks
     ), agent_chunks AS (
       SELECT workspace_agent_id AS id, key, collected_at,
              (sum(octet_length(to_json(key)::text) + 2) OVER (PARTITION BY workspace_agent_id ORDER BY key) - 1) / $9 AS chunk
       FROM updated
     ), agent_notified AS (
       SELECT pg_notify($8 || id::text, json_build_object('collected_at', max(collected_at), 'keys', json_agg(key ORDER BY key))::text)
       FROM agent_chunks GROUP BY id, chunk
     )
     SELECT (SELECT count(*) FROM updated)::int AS "rowsUpdated",
            (SELECT count(*) FROM agent_notified)::int AS "agentNotifies",
            coalesce((SELECT array_agg(id) FROM notified, unnest(ids) AS id), '{}')::text[] AS "agentIds"`,
    [
      list.map((u) => u.agentId), list.map((u) => u.key), list.map((u) => u.value), list.map((u) => u.error),
      list.map((u) => isoOrNull(u.collectedAt)), METADATA_BATCH_IDS_PER_NOTIFY, AGENT_METADATA_BATCH_CHANNEL,
      AGENT_METADATA_CHANNEL_PREFIX, METADATA_KEY_BYTES_PER_NOTIFY,
    ],
  );
  const { rowsUpdated, agentIds } = rows[0] ?? { rowsUpdated: 0, agentIds: [] };
  return { rowsUpdated, agentIds };
}
