/** The connection statuses every API reports for an agent, as coderd computes them. */
export const AGENT_STATUSES = ["connecting", "connected", "disconnected", "timeout"] as const;
/** One of {@link AGENT_STATUSES}. */
export type AgentStatus = (typeof AGENT_STATUSES)[number];

/** The agent columns the status depends on. */
export interface AgentStatusInput {
  createdAt: Date;
  firstConnectedAt: Date | null;
  lastConnectedAt: Date | null;
  disconnectedAt: Date | null;
  /** 0 disables the timeout status. */
  connectionTimeoutSeconds: number;
}

/** The status, and the disconnected time to report with it. */
export interface AgentStatusResult {
  status: AgentStatus;
  /** For `disconnected`: the stored disconnected_at, or last_connected_at when the agent went quiet (rule 3). */
  disconnectedAt: Date | null;
}

/**
 * Computes an agent's status at `now`, with coderd's rules, in this order:
 * 1. never connected: `timeout` once more than `connection_timeout_seconds` (> 0) have passed since
 *    creation, else `connecting`;
 * 2. disconnected_at not before last_connected_at (equal counts) → `disconnected`;
 * 3. more than `inactiveTimeoutMs` since last_connected_at → `disconnected`, reported as of last_connected_at;
 * 4. otherwise `connected`.
 * Pure: every caller passes its own clock and the configured AgentInactiveDisconnectTimeout.
 */
export function agentStatus(row: AgentStatusInput, now: Date, inactiveTimeoutMs: number): AgentStatusResult {
  if (row.firstConnectedAt === null) {
    const timeoutMs = row.connectionTimeoutSeconds * 1000;
    const waited = now.getTime() - row.createdAt.getTime();
    return { status: row.connectionTimeoutSeconds > 0 && waited > timeoutMs ? "timeout" : "connecting", disconnectedAt: null };
  }
  // A null last_connected_at after a first connection can't be written by agentgate; treat it as
  // the zero time, as Coder's Go code would.
  const last = row.lastConnectedAt?.getTime() ?? Number.NEGATIVE_INFINITY;
  if (row.disconnectedAt !== null && row.disconnectedAt.getTime() >= last) {
    return { status: "disconnected", disconnectedAt: row.disconnectedAt };
  }
  if (now.getTime() - last > inactiveTimeoutMs) {
    return { status: "disconnected", disconnectedAt: row.lastConnectedAt };
  }
  return { status: "connected", disconnectedAt: null };
}
