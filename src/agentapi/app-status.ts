import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  UpdateAppStatusRequest_AppStatusStateSchema,
  UpdateAppStatusResponseSchema,
  type UpdateAppStatusRequest,
  type UpdateAppStatusResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { APP_STATUS_STATES } from "../db/enums.js";
import { insertAppStatus } from "../db/queries/app-statuses.js";
import { getAppBySlug } from "../db/queries/apps.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiContext } from "./context.js";
import { internal, invalid } from "./rpc-errors.js";

/** Longest status message, in characters, as coderd's: a one-line summary for a dashboard. */
export const MAX_APP_STATUS_MESSAGE_CHARS = 160;

const STATES = enumMapping(UpdateAppStatusRequest_AppStatusStateSchema, APP_STATUS_STATES);

/** UpdateAppStatus: what an app (an AI agent, typically) is doing, stored and announced. */
export function appStatusApi(api: AgentApiContext) {
  return {
    async updateAppStatus(req: UpdateAppStatusRequest, ctx: HandlerContext): Promise<UpdateAppStatusResponse> {
      const { identity, agent } = await api.loadCaller(ctx);
      if ([...req.message].length > MAX_APP_STATUS_MESSAGE_CHARS) throw invalid("Message is too long.");
      const state = STATES.toDb(req.state);
      if (state === undefined) throw invalid("Invalid state provided.");
      const app = await getAppBySlug(api.db, agent.id, req.slug).catch((err: unknown) => {
        throw internal("Failed to get workspace app.", err);
      });
      if (app === undefined) throw new ConnectError("Failed to get workspace app.", Code.NotFound);
      try {
        await insertAppStatus(api.db, {
          id: randomUUID(),
          createdAt: api.clock(),
          workspaceId: identity.workspaceId,
          agentId: agent.id,
          appId: app.id,
          state,
          message: sanitizeMessage(req.message),
          uri: req.uri === "" ? null : req.uri,
        });
      } catch (err) {
        throw internal("insert workspace app status", err);
      }
      await api.publishWorkspaceEvent(identity.ownerId, { kind: "agt_app_status_update", workspace_id: identity.workspaceId, agent_id: agent.id });
      return create(UpdateAppStatusResponseSchema);
    },
  };
}

/** One clean line for a dashboard: control characters (newlines, escapes) become spaces, ends trimmed. */
function sanitizeMessage(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
}
