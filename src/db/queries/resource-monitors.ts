import type { Queryable } from "../database.js";
import type { MonitorState } from "../enums.js";

/** A `workspace_agent_memory_resource_monitors` row. */
export interface MemoryMonitor {
  agentId: string;
  enabled: boolean;
  /** Percent. */
  threshold: number;
  createdAt: Date;
  updatedAt: Date;
  state: MonitorState;
  debouncedUntil: Date;
}

/** A `workspace_agent_volume_resource_monitors` row. */
export interface VolumeMonitor extends MemoryMonitor {
  path: string;
}

const COLS = `agent_id AS "agentId", enabled, threshold, created_at AS "createdAt", updated_at AS "updatedAt", state,
  debounced_until AS "debouncedUntil"`;

/** Creates the memory monitor of an agent (provisioning). */
export async function insertMemoryMonitor(q: Queryable, p: { agentId: string; enabled: boolean; threshold: number; now: Date }): Promise<void> {
  await q.query(
    "INSERT INTO workspace_agent_memory_resource_monitors (agent_id, enabled, threshold, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    [p.agentId, p.enabled, p.threshold, p.now],
  );
}

/** Creates a volume monitor of an agent (provisioning). */
export async function insertVolumeMonitor(q: Queryable, p: { agentId: string; path: string; enabled: boolean; threshold: number; now: Date }): Promise<void> {
  await q.query(
    "INSERT INTO workspace_agent_volume_resource_monitors (agent_id, path, enabled, threshold, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    [p.agentId, p.path, p.enabled, p.threshold, p.now],
  );
}

/** The memory monitor of an agent, if provisioned. */
export async function getMemoryMonitor(q: Queryable, agentId: string): Promise<MemoryMonitor | undefined> {
  const { rows } = await q.query<MemoryMonitor>(`SELECT ${COLS} FROM workspace_agent_memory_resource_monitors WHERE agent_id = $1`, [agentId]);
  return rows[0];
}

/** The volume monitors of an agent, by path. */
export async function listVolumeMonitors(q: Queryable, agentId: string): Promise<VolumeMonitor[]> {
  const { rows } = await q.query<VolumeMonitor>(`SELECT ${COLS}, path FROM workspace_agent_volume_resource_monitors WHERE agent_id = $1 ORDER BY path`, [agentId]);
  return rows;
}

/** Writes a memory monitor's state after a usage push. */
export async function updateMemoryMonitor(q: Queryable, p: { agentId: string; state: MonitorState; debouncedUntil: Date; now: Date }): Promise<void> {
  await q.query(
    "UPDATE workspace_agent_memory_resource_monitors SET state = $2, debounced_until = $3, updated_at = $4 WHERE agent_id = $1",
    [p.agentId, p.state, p.debouncedUntil, p.now],
  );
}

/** Writes a volume monitor's state after a usage push. */
export async function updateVolumeMonitor(
  q: Queryable,
  p: { agentId: string; path: string; state: MonitorState; debouncedUntil: Date; now: Date },
): Promise<void> {
  await q.query(
    "UPDATE workspace_agent_volume_resource_monitors SET state = $3, debounced_until = $4, updated_at = $5 WHERE agent_id = $1 AND path = $2",
    [p.agentId, p.path, p.state, p.debouncedUntil, p.now],
  );
}
