import type { WorkspaceEvent } from "../db/events.js";

/**
 * Publishes a `workspace_owner:<ownerId>` event. Never rejects: a failed publish is logged and
 * dropped, so it can't fail the RPC that caused it (contract C10).
 */
export type PublishWorkspaceEventFn = (ownerId: string, event: WorkspaceEvent) => Promise<void>;

/** The server's clock; handlers never read time any other way, so tests can see what they wrote. */
export type Clock = () => Date;
