import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  AppHealth as AppHealthEnum,
  BatchUpdateAppHealthResponseSchema,
  type BatchUpdateAppHealthRequest,
  type BatchUpdateAppHealthResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import type { AppHealth } from "../db/enums.js";
import type { WorkspaceApp } from "../db/queries/apps.js";
import { internal, invalid, type LoadCaller } from "./caller.js";
import type { PublishWorkspaceEventFn } from "./publish.js";
import { uuidFromBytes } from "./uuid-bytes.js";

/** What BatchUpdateAppHealths needs (agent-api.md §2.5). */
export interface AppsDeps {
  loadCaller: LoadCaller;
  listApps(agentId: string): Promise<WorkspaceApp[]>;
  /** Writes every given health in one statement. */
  updateAppHealths(updates: { id: string; health: AppHealth }[]): Promise<void>;
  publishWorkspaceEvent: PublishWorkspaceEventFn;
}

const HEALTHS: Partial<Record<AppHealthEnum, AppHealth>> = {
  [AppHealthEnum.DISABLED]: "disabled",
  [AppHealthEnum.INITIALIZING]: "initializing",
  [AppHealthEnum.HEALTHY]: "healthy",
  [AppHealthEnum.UNHEALTHY]: "unhealthy",
};

/**
 * BatchUpdateAppHealths: the whole batch is validated before anything is written; only changed
 * healths are written, and `app_health` is published only when one changed ([NEW]).
 */
export function appsApi(deps: AppsDeps) {
  return {
    async batchUpdateAppHealths(req: BatchUpdateAppHealthRequest, ctx: HandlerContext): Promise<BatchUpdateAppHealthResponse> {
      const response = create(BatchUpdateAppHealthResponseSchema);
      const { identity, agent } = await deps.loadCaller(ctx);
      if (req.updates.length === 0) return response;
      const apps = await deps.listApps(agent.id).catch((err: unknown) => {
        throw internal("get workspace apps by agent ID", err);
      });
      const byId = new Map(apps.map((a) => [a.id, a]));
      const changed = new Map<string, AppHealth>();
      for (const update of req.updates) {
        const id = uuidFromBytes(update.id, "parse workspace app ID");
        const app = byId.get(id);
        if (app === undefined) throw new ConnectError(`workspace app ID "${id}" not found`, Code.NotFound);
        if (app.healthcheckUrl === "") {
          throw new ConnectError(`workspace app "${app.slug}" (${id}) does not have healthchecks enabled`, Code.FailedPrecondition);
        }
        const health = HEALTHS[update.health];
        if (health === undefined) throw invalid(`unknown health status: ${AppHealthEnum[update.health] ?? update.health}`);
        // Within one batch the last word on an app counts; compare it with the stored value below.
        changed.set(id, health);
      }
      const updates = [...changed].filter(([id, health]) => byId.get(id)!.health !== health).map(([id, health]) => ({ id, health }));
      if (updates.length === 0) return response;
      await deps.updateAppHealths(updates).catch((err: unknown) => {
        throw internal("update workspace app health", err);
      });
      await deps.publishWorkspaceEvent(identity.ownerId, { kind: "app_health", workspace_id: identity.workspaceId, agent_id: agent.id });
      return response;
    },
  };
}
