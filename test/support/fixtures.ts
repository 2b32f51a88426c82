/**
 * Rows for tests, made through the query functions: each call makes a unique user, workspace and
 * build, so tests sharing one database (see ./database.ts) don't see each other's rows.
 */
import { randomUUID } from "node:crypto";
import type { Queryable } from "../../src/db/database.js";
import { insertAgent, type InsertAgentParams, type WorkspaceAgent } from "../../src/db/queries/agents.js";
import { insertNextBuild, type WorkspaceBuild } from "../../src/db/queries/builds.js";
import { insertResource } from "../../src/db/queries/resources.js";
import { insertUser, type User } from "../../src/db/queries/users.js";
import { insertWorkspace, type Workspace } from "../../src/db/queries/workspaces.js";

/** A workspace with one build, one resource and its agents. */
export interface WorkspaceFixture {
  owner: User;
  workspace: Workspace;
  build: WorkspaceBuild;
  agents: WorkspaceAgent[];
}

/** Makes a user, a workspace, build 1 and one agent per name (default one agent "main"). */
export async function makeWorkspace(
  q: Queryable,
  opts: { agents?: (string | Partial<InsertAgentParams>)[]; now?: Date } = {},
): Promise<WorkspaceFixture> {
  const now = opts.now ?? new Date();
  const suffix = randomUUID().slice(0, 8);
  const owner = await insertUser(q, { id: randomUUID(), username: `user-${suffix}`, now });
  const workspace = await insertWorkspace(q, { id: randomUUID(), ownerId: owner.id, name: `ws-${suffix}`, now });
  const { build, agents } = await makeBuild(q, workspace, owner.id, { agents: opts.agents ?? ["main"], now });
  return { owner, workspace, build, agents };
}

/** Makes the next build of `workspace` with one resource and the given agents. */
export async function makeBuild(
  q: Queryable,
  workspace: Workspace,
  initiatorId: string,
  opts: { agents?: (string | Partial<InsertAgentParams>)[]; now?: Date } = {},
): Promise<{ build: WorkspaceBuild; agents: WorkspaceAgent[] }> {
  const now = opts.now ?? new Date();
  const build = await insertNextBuild(q, {
    id: randomUUID(), workspaceId: workspace.id, jobId: randomUUID(), initiatorId,
    transition: "start", reason: "initiator", now,
  });
  const resource = await insertResource(q, { id: randomUUID(), jobId: build.jobId, transition: "start", type: "agentgate_workspace", name: "workspace", now });
  const agents: WorkspaceAgent[] = [];
  for (const a of opts.agents ?? ["main"]) {
    const p = typeof a === "string" ? { name: a } : a;
    agents.push(
      await insertAgent(q, {
        id: randomUUID(), resourceId: resource.id, name: "main", authToken: randomUUID(),
        architecture: "amd64", operatingSystem: "linux", now, ...p,
      }),
    );
  }
  return { build, agents };
}
