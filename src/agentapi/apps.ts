import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  AppHealth as AppHealthEnum,
  AppHealthSchema,
  BatchUpdateAppHealthResponseSchema,
  type BatchUpdateAppHealthRequest,
  type BatchUpdateAppHealthResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { APP_HEALTHS, type AppHealth } from "../db/enums.js";
import { listAppsByAgentId, updateAppHealths } from "../db/queries/apps.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiContext } from "./context.js";
import { MAX_APP_HEALTH_UPDATES_PER_CALL } from "./limits.js";
import { internal, invalid } from "./rpc-errors.js";
import { uuidFromBytes } from "./uuid-bytes.js";

const HEALTHS = enumMapping(AppHealthSchema, APP_HEALTHS);

/**
 * BatchUpdateAppHealths: the whole batch is validated before anything is written; only changed
 * healths are written (in one statement), and `app_health` is published only when one changed,
 * as newer coderd releases do.
 */
export function appsApi(api: AgentApiContext) {
  return {
    async batchUpdateAppHealths(req: BatchUpdateAppHealthRequest, ctx: HandlerContext): Promise<BatchUpdateAppHealthResponse> {
      const response = create(BatchUpdateAppHealthResponseSchema);
      const { identity, agent } = await api.loadCaller(ctx);
      if (req.updates.length === 0) return response;
      if (req.updates.length > MAX_APP_HEALTH_UPDATES_PER_CALL) {
        throw new ConnectError(`${req.updates.length} app health updates; at most ${MAX_APP_HEALTH_UPDATES_PER_CALL} per call`, Code.ResourceExhausted);
      }
      const apps = await listAppsByAgentId(api.db, agent.id).catch((err: unknown) => {
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
        const health = HEALTHS.toDb(update.health);
        if (health === undefined) throw invalid(`unknown health status: ${AppHealthEnum[update.health] ?? update.health}`);
        // Within one batch the last word on an app counts; compare it with the stored value below.
        changed.set(id, health);
      }
      const updates = [...changed].filter(([id, health]) => byId.get(id)!.health !== health).map(([id, health]) => ({ id, health }));
      if (updates.length === 0) return response;
      await updateAppHealths(api.db, updates).catch((err: unknown) => {
        throw internal("update workspace app health", err);
      });
      await api.publishWorkspaceEvent(identity.ownerId, { kind: "app_health", workspace_id: identity.workspaceId, agent_id: agent.id });
      return response;
    },
  };
}
