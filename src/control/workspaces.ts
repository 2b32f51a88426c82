import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  BuildWorkspaceRequest,
  CreateWorkspaceRequest,
  DeleteWorkspaceRequest,
  DeleteWorkspaceResponseSchema,
  GetWorkspaceSpecRequest,
  GetWorkspaceSpecResponseSchema,
} from "../../gen/agentgate/control/v1/control_pb.js";
import { publishWorkspaceEvent } from "../db/events.js";
import { getWorkspaceById } from "../db/queries/workspaces.js";
import { buildWorkspace, createWorkspace, deleteWorkspace, readCurrentSpec, type ProvisionResult } from "../provision/provision.js";
import type { ControlOptions } from "./control-service.js";
import { toConnectError } from "./errors.js";
import { specFromMessage, specToMessage } from "./spec-message.js";

/** The fields CreateWorkspaceResponse and BuildWorkspaceResponse share: a plain object fits either. */
interface BuildAnswer {
  workspaceId: string;
  buildId: string;
  buildNumber: number;
  agents: { id: string; name: string; token: string }[];
}

/** CreateWorkspace, BuildWorkspace, GetWorkspaceSpec and DeleteWorkspace over src/provision. */
export function workspaceHandlers(options: Pick<ControlOptions, "db" | "logger">) {
  const { db, logger } = options;
  /** Tells the owner's watchers that a workspace's agents changed (provisioning itself publishes nothing). */
  const announce = async (workspaceId: string, ownerId?: string) => {
    const owner = ownerId ?? (await getWorkspaceById(db, workspaceId))?.ownerId;
    if (owner !== undefined) await publishWorkspaceEvent(db.pubsub, owner, { kind: "state_change", workspace_id: workspaceId }, logger);
  };
  return {
    async createWorkspace(req: CreateWorkspaceRequest): Promise<BuildAnswer> {
      const result = await provisioning(() => createWorkspace(db, { owner: req.owner, name: req.name, spec: specFromMessage(req.spec) }));
      await announce(result.workspace_id);
      return buildAnswer(result);
    },
    async buildWorkspace(req: BuildWorkspaceRequest): Promise<BuildAnswer> {
      // No spec: the latest build's spec again (an empty one still fails: a build needs an agent).
      const spec = req.spec === undefined ? undefined : specFromMessage(req.spec);
      const result = await provisioning(() => buildWorkspace(db, { workspace: req.workspace, spec }));
      await announce(result.workspace_id);
      return buildAnswer(result);
    },
    async getWorkspaceSpec(req: GetWorkspaceSpecRequest): Promise<MessageInitShape<typeof GetWorkspaceSpecResponseSchema>> {
      const current = await provisioning(() => readCurrentSpec(db, req.workspace));
      return { ...current, spec: specToMessage(current.spec) };
    },
    async deleteWorkspace(req: DeleteWorkspaceRequest): Promise<MessageInitShape<typeof DeleteWorkspaceResponseSchema>> {
      const workspace = await provisioning(() => deleteWorkspace(db, { workspace: req.workspace }));
      await announce(workspace.id, workspace.ownerId);
      return { workspaceId: workspace.id };
    },
  };
}

async function provisioning<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toConnectError(err);
  }
}

function buildAnswer(r: ProvisionResult): BuildAnswer {
  return { workspaceId: r.workspace_id, buildId: r.build_id, buildNumber: r.build_number, agents: r.agents };
}
