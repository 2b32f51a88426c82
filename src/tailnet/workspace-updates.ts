import { create } from "@bufbuild/protobuf";
import {
  AgentSchema,
  Workspace_Status,
  WorkspaceSchema,
  WorkspaceUpdateSchema,
  type Agent,
  type Workspace,
  type WorkspaceUpdate,
} from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidToBytes } from "../agentapi/uuid-bytes.js";
import type { Database } from "../db/database.js";
import type { WorkspaceTransition } from "../db/enums.js";
import { subscribeWorkspaceState, workspaceOwnerChannel } from "../db/events.js";
import { listAgentOverviews } from "../db/queries/agents.js";
import { listOwnerWorkspaceTransitions } from "../db/queries/workspaces.js";
import { watchLoop } from "../db/watch-loop.js";

/**
 * A workspace's status from its latest build. Builds in agentgate complete as they are made
 * (there is no provisioner job to wait for), so a start build is running.
 */
const STATUS_OF: Record<WorkspaceTransition, Workspace_Status> = {
  start: Workspace_Status.RUNNING,
  stop: Workspace_Status.STOPPED,
  delete: Workspace_Status.DELETED,
};

/** What WorkspaceUpdates needs. */
export interface WorkspaceUpdatesDeps {
  db: Database;
}

/**
 * One owner's workspaces and the agents of their latest builds: everything at first, then what
 * was upserted or deleted since the last update, whenever a build, a deletion or an agent's
 * connection or lifecycle changes something. Subscribes to `workspace_owner:<owner>` before the
 * first read so no change falls in between; events arriving during a read coalesce into one
 * re-read. An event that changes nothing a client sees sends nothing. Ends when `signal` aborts.
 */
export async function* workspaceUpdates(deps: WorkspaceUpdatesDeps, ownerId: string, signal: AbortSignal): AsyncGenerator<WorkspaceUpdate> {
  const snapshots = watchLoop<Snapshot>(
    {
      listen: (notify) => subscribeWorkspaceState(deps.db.pubsub, workspaceOwnerChannel(ownerId), notify),
      async read() {
        const value = await readSnapshot(deps.db, ownerId);
        return { value, key: snapshotKey(value) };
      },
    },
    signal,
  );
  let sent: Snapshot | undefined;
  for await (const now of snapshots) {
    const update = diff(sent, now);
    sent = now;
    if (update !== undefined) yield update;
  }
}

interface Snapshot {
  workspaces: Map<string, Workspace>;
  agents: Map<string, Agent>;
}

async function readSnapshot(db: Database, ownerId: string): Promise<Snapshot> {
  const [workspaces, overviews] = await Promise.all([listOwnerWorkspaceTransitions(db, ownerId), listAgentOverviews(db, { ownerId })]);
  return {
    workspaces: new Map(workspaces.map((w) => [w.id, create(WorkspaceSchema, {
      id: uuidToBytes(w.id),
      name: w.name,
      status: w.transition === null ? Workspace_Status.PENDING : STATUS_OF[w.transition],
    })])),
    agents: new Map(overviews.map((o) => [o.agent.id, create(AgentSchema, {
      id: uuidToBytes(o.agent.id),
      name: o.agent.name,
      workspaceId: uuidToBytes(o.workspaceId),
    })])),
  };
}

/** What changed from `before` (everything when there was nothing before); undefined when nothing did. */
function diff(before: Snapshot | undefined, now: Snapshot): WorkspaceUpdate | undefined {
  const update = create(WorkspaceUpdateSchema, {
    upsertedWorkspaces: [...now.workspaces].filter(([id, w]) => !sameWorkspace(before?.workspaces.get(id), w)).map(([, w]) => w),
    upsertedAgents: [...now.agents].filter(([id, a]) => !sameAgent(before?.agents.get(id), a)).map(([, a]) => a),
    deletedWorkspaces: [...(before?.workspaces ?? [])].filter(([id]) => !now.workspaces.has(id)).map(([, w]) => w),
    deletedAgents: [...(before?.agents ?? [])].filter(([id]) => !now.agents.has(id)).map(([, a]) => a),
  });
  const changed = update.upsertedWorkspaces.length + update.upsertedAgents.length + update.deletedWorkspaces.length + update.deletedAgents.length > 0;
  return before === undefined || changed ? update : undefined;
}

/** What a client is told about; a snapshot with the same key as the last one sends nothing. */
function snapshotKey(s: Snapshot): string {
  return JSON.stringify([
    [...s.workspaces].map(([id, w]) => [id, w.name, w.status]),
    [...s.agents].map(([id, a]) => [id, a.name, Buffer.from(a.workspaceId).toString("hex")]),
  ]);
}

function sameWorkspace(a: Workspace | undefined, b: Workspace): boolean {
  return a !== undefined && a.name === b.name && a.status === b.status;
}

function sameAgent(a: Agent | undefined, b: Agent): boolean {
  return a !== undefined && a.name === b.name && Buffer.from(a.workspaceId).equals(b.workspaceId);
}
