import type { Logger } from "../log.js";
import { NIL_UUID } from "./enums.js";
import type { Pubsub } from "./pubsub.js";

/**
 * Well-known pubsub channels and their payloads (agent-api.md §1.10). Channels carry ids; a
 * subscriber re-reads the database.
 */

/** Kinds of `workspace_owner:<owner>` events. */
export const WORKSPACE_EVENT_KINDS = [
  "state_change", "stats_update", "mtd_update", "app_health",
  "agt_lifecycle_update", "agt_connection_update", "agt_first_logs", "agt_logs_overflow",
  "agt_timeout", "agt_task_update", "agt_app_status_update",
  // agentgate's stand-in for Coder's out-of-memory/out-of-disk notifications (agent-api.md §2.11).
  "agt_resources_alert",
] as const;
export type WorkspaceEventKind = (typeof WORKSPACE_EVENT_KINDS)[number];

/** Payload of `workspace_owner:<owner>`. */
export interface WorkspaceEvent {
  kind: WorkspaceEventKind;
  workspace_id: string;
  agent_id?: string;
}

/** `workspace_owner:<ownerId>`: workspace changes for one owner. */
export function workspaceOwnerChannel(ownerId: string): string {
  return `workspace_owner:${ownerId}`;
}

/** `agent-logs:<agentId>`: new log rows, payload {@link AgentLogsEvent}. */
export function agentLogsChannel(agentId: string): string {
  return `agent-logs:${agentId}`;
}

/** Payload of `agent-logs:<agent>`: rows with id greater than `created_after` are new. */
export interface AgentLogsEvent {
  created_after: number;
}

/** `workspace_agent_metadata:<agentId>`: metadata values changed, payload {@link AgentMetadataEvent}. */
export function agentMetadataChannel(agentId: string): string {
  return `workspace_agent_metadata:${agentId}`;
}

/** Payload of `workspace_agent_metadata:<agent>`. */
export interface AgentMetadataEvent {
  /** RFC 3339. */
  collected_at: string;
  keys: string[];
}

/** [LATEST] `workspace_agent_metadata_batch`: agent ids whose metadata a batcher flush changed. */
export const AGENT_METADATA_BATCH_CHANNEL = "workspace_agent_metadata_batch";

/** An event that §1.10's checks reject: it is dropped, never published. */
export class InvalidWorkspaceEventError extends Error {
  override name = "InvalidWorkspaceEventError";
}

/**
 * Checks an event as §1.10 says: a non-nil workspace_id, a known kind, and an agent_id for
 * `agt_lifecycle_update`. Throws {@link InvalidWorkspaceEventError}.
 */
export function validateWorkspaceEvent(event: WorkspaceEvent): void {
  if (!WORKSPACE_EVENT_KINDS.includes(event.kind)) throw new InvalidWorkspaceEventError(`workspace event: unknown kind "${String(event.kind)}"`);
  if (!event.workspace_id || event.workspace_id === NIL_UUID) throw new InvalidWorkspaceEventError("workspace event: workspace_id is nil");
  if (event.kind === "agt_lifecycle_update" && (!event.agent_id || event.agent_id === NIL_UUID)) {
    throw new InvalidWorkspaceEventError("workspace event: agt_lifecycle_update needs agent_id");
  }
}

/**
 * Publishes a `workspace_owner:<ownerId>` event. Never throws: an invalid event or a failed
 * publish is logged and dropped, so it can't fail the RPC that caused it (C10). Resolves to whether
 * it was published.
 */
export async function publishWorkspaceEvent(
  pubsub: Pubsub,
  ownerId: string,
  event: WorkspaceEvent,
  logger?: Logger,
): Promise<boolean> {
  try {
    validateWorkspaceEvent(event);
    const payload: WorkspaceEvent = { kind: event.kind, workspace_id: event.workspace_id };
    if (event.agent_id) payload.agent_id = event.agent_id;
    await pubsub.publish(workspaceOwnerChannel(ownerId), JSON.stringify(payload));
    return true;
  } catch (err) {
    logger?.warn({ err, kind: event.kind, workspace_id: event.workspace_id }, "workspace event not published");
    return false;
  }
}

/**
 * Kinds after which a workspace's builds, agents, or agents' connection or lifecycle may differ;
 * the frequent ones (stats, metadata, logs, app health) change none of these.
 */
const WORKSPACE_STATE_EVENT_KINDS: ReadonlySet<WorkspaceEventKind> = new Set<WorkspaceEventKind>([
  "state_change", "agt_connection_update", "agt_lifecycle_update", "agt_timeout",
]);

/**
 * For a loop that re-reads an owner's workspaces: notifies `wakeup` on each
 * `workspace_owner:<ownerId>` event that may change their builds, agents or agents' state (a
 * payload that can't be parsed counts, to be safe), when events may have been missed, and when
 * `signal` aborts. Resolves once listening, with a function that stops it.
 */
export async function wakeOnWorkspaceState(pubsub: Pubsub, ownerId: string, signal: AbortSignal, wakeup: { notify(): void }): Promise<() => void> {
  const notify = () => wakeup.notify();
  signal.addEventListener("abort", notify, { once: true });
  let unsubscribe: () => void;
  try {
    unsubscribe = await pubsub.subscribe(
      workspaceOwnerChannel(ownerId),
      (payload) => {
        if (isWorkspaceStateEvent(payload)) wakeup.notify();
      },
      notify,
    );
  } catch (err) {
    signal.removeEventListener("abort", notify);
    throw err;
  }
  return () => {
    signal.removeEventListener("abort", notify);
    unsubscribe();
  };
}

function isWorkspaceStateEvent(payload: Buffer): boolean {
  try {
    return WORKSPACE_STATE_EVENT_KINDS.has((JSON.parse(payload.toString("utf8")) as WorkspaceEvent).kind);
  } catch {
    return true;
  }
}
