import type { Logger } from "../log.js";
import { NIL_UUID } from "./enums.js";
import type { Pubsub } from "./pubsub.js";

/**
 * Well-known pubsub channels and their payloads, as coderd publishes them. Channels carry ids; a
 * subscriber re-reads the database.
 */

/** Kinds of `workspace_owner:<owner>` events. */
export const WORKSPACE_EVENT_KINDS = [
  "state_change", "stats_update", "mtd_update", "app_health",
  "agt_lifecycle_update", "agt_connection_update", "agt_first_logs", "agt_logs_overflow",
  "agt_timeout", "agt_task_update", "agt_app_status_update",
  // agentgate's stand-in for Coder's out-of-memory/out-of-disk notifications.
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

/** A `workspace_owner` payload, or undefined when it is not JSON. */
export function parseWorkspaceEvent(payload: Buffer): WorkspaceEvent | undefined {
  try {
    return JSON.parse(payload.toString("utf8")) as WorkspaceEvent;
  } catch {
    return undefined;
  }
}

/**
 * The kinds that can change an agent's summary (its connection, lifecycle or build). Stats,
 * metadata, logs and app health are left out: they are frequent and change nothing there.
 */
export const AGENT_SUMMARY_EVENT_KINDS: ReadonlySet<WorkspaceEventKind> = new Set<WorkspaceEventKind>([
  "agt_connection_update", "agt_lifecycle_update", "agt_timeout", "state_change",
]);

/**
 * [agentgate] `workspace_owner_any`: every owner's events of {@link AGENT_SUMMARY_EVENT_KINDS},
 * same payload, for watchers of the whole fleet: a LISTEN per owner could not learn of new owners.
 */
export const ANY_OWNER_CHANNEL = "workspace_owner_any";

/** `agent-logs:<agentId>`: new log rows, payload {@link AgentLogsEvent}. */
export function agentLogsChannel(agentId: string): string {
  return `agent-logs:${agentId}`;
}

/** Payload of `agent-logs:<agent>`: rows with id greater than `created_after` are new. */
export interface AgentLogsEvent {
  created_after: number;
}

/** What {@link agentMetadataChannel} puts before the agent id (SQL that notifies builds the name from it). */
export const AGENT_METADATA_CHANNEL_PREFIX = "workspace_agent_metadata:";

/** `workspace_agent_metadata:<agentId>`: metadata values changed, payload {@link AgentMetadataEvent}. */
export function agentMetadataChannel(agentId: string): string {
  return `${AGENT_METADATA_CHANNEL_PREFIX}${agentId}`;
}

/** Payload of `workspace_agent_metadata:<agent>`. */
export interface AgentMetadataEvent {
  /** RFC 3339: when the newest of these values was collected (server time). */
  collected_at: string;
  /** The keys whose values changed, sorted. */
  keys: string[];
}

/** `workspace_agent_metadata_batch` (newest coderd releases): agent ids whose metadata a batcher flush changed. */
export const AGENT_METADATA_BATCH_CHANNEL = "workspace_agent_metadata_batch";

/** An event that {@link validateWorkspaceEvent} rejects: it is dropped, never published. */
export class InvalidWorkspaceEventError extends Error {
  override name = "InvalidWorkspaceEventError";
}

/**
 * Checks an event as coderd does: a non-nil workspace_id, a known kind, and an agent_id for
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
 * Publishes a `workspace_owner:<ownerId>` event, and one of {@link AGENT_SUMMARY_EVENT_KINDS} on
 * {@link ANY_OWNER_CHANNEL} too. Never throws: an invalid event or a failed publish is logged and
 * dropped, so it can't fail the RPC that caused it. Resolves to whether it was published.
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
    const text = JSON.stringify(payload);
    await pubsub.publish(workspaceOwnerChannel(ownerId), text);
    if (AGENT_SUMMARY_EVENT_KINDS.has(event.kind)) await pubsub.publish(ANY_OWNER_CHANNEL, text);
    return true;
  } catch (err) {
    logger?.warn({ err, kind: event.kind, workspace_id: event.workspace_id }, "workspace event not published");
    return false;
  }
}

/**
 * For a loop that re-reads workspaces or agents: calls `notify` on each event of `channel` (an
 * owner's, or {@link ANY_OWNER_CHANNEL}) that may change their builds, agents or agents' state,
 * that is one of {@link AGENT_SUMMARY_EVENT_KINDS} (a payload that can't be parsed counts, to be
 * safe), and when events may have been missed. Resolves once listening, with a function that stops.
 */
export function subscribeWorkspaceState(pubsub: Pubsub, channel: string, notify: () => void): Promise<() => void> {
  return pubsub.subscribe(
    channel,
    (payload) => {
      const event = parseWorkspaceEvent(payload);
      if (event === undefined || AGENT_SUMMARY_EVENT_KINDS.has(event.kind)) notify();
    },
    notify,
  );
}

/**
 * `agent_identity`: an agent's identity ended or may have. The database publishes it itself
 * (triggers of migration 0003), whatever wrote the change, so every replica hears it.
 */
export const AGENT_IDENTITY_CHANNEL = "agent_identity";

/** Payload of {@link AGENT_IDENTITY_CHANNEL}. */
export type AgentIdentityEvent =
  /** The agent was deleted, or (not deleted) its token changed. */
  | { kind: "agent"; agent_id: string; deleted: boolean }
  /** The workspace was deleted: all its agents are gone. */
  | { kind: "workspace"; workspace_id: string }
  /** A new build of the workspace: agents of any other build are outdated. */
  | { kind: "build"; workspace_id: string; build_id: string };

/** An `agent_identity` payload, or undefined when it is not one. */
export function parseAgentIdentityEvent(payload: Buffer): AgentIdentityEvent | undefined {
  let event: unknown;
  try {
    event = JSON.parse(payload.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof event !== "object" || event === null) return undefined;
  const e = event as Record<string, unknown>;
  if (e.kind === "agent" && typeof e.agent_id === "string") return { kind: "agent", agent_id: e.agent_id, deleted: e.deleted !== false };
  if (e.kind === "workspace" && typeof e.workspace_id === "string") return { kind: "workspace", workspace_id: e.workspace_id };
  if (e.kind === "build" && typeof e.workspace_id === "string" && typeof e.build_id === "string") {
    return { kind: "build", workspace_id: e.workspace_id, build_id: e.build_id };
  }
  return undefined;
}
