import { randomUUID } from "node:crypto";
import { isIP } from "node:net";
import { create } from "@bufbuild/protobuf";
import { EmptySchema, timestampDate, type Empty } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { Connection_Action, Connection_ActionSchema, Connection_Type, Connection_TypeSchema, type ReportConnectionRequest } from "../../gen/coder/agent/v2/agent_pb.js";
import { CONNECTION_TYPES, NIL_UUID, type ConnectionType } from "../db/enums.js";
import { CONNECTION_ACTIONS, upsertConnectionLog } from "../db/queries/connection-logs.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiContext } from "./context.js";
import { internal, invalid } from "./rpc-errors.js";
import { uuidFromBytes } from "./uuid-bytes.js";

const ACTIONS = enumMapping(Connection_ActionSchema, CONNECTION_ACTIONS);
const LEGACY_TYPES = enumMapping(Connection_TypeSchema, CONNECTION_TYPES);

/** ReportConnection: an SSH/IDE/PTY session opening or closing, upserted into `connection_logs` (coderd's connection-log variant). */
export function connectionsApi(api: AgentApiContext) {
  return {
    async reportConnection(req: ReportConnectionRequest, ctx: HandlerContext): Promise<Empty> {
      const { identity, agent } = await api.loadCaller(ctx);
      const c = req.connection;
      if (c === undefined) throw invalid("connection is required");
      const connectionId = uuidFromBytes(c.id, "connection id from bytes");
      if (connectionId === NIL_UUID) throw invalid("connection ID cannot be nil");
      const action = ACTIONS.toDb(c.action);
      if (action === undefined) throw invalid(`unknown connection action ${Connection_Action[c.action] ?? c.action}`);
      const type = connectionType(c.appName, c.type);
      try {
        await upsertConnectionLog(api.db, {
          id: randomUUID(),
          connectionId,
          action,
          time: c.timestamp === undefined ? api.clock() : timestampDate(c.timestamp),
          workspaceOwnerId: identity.ownerId,
          workspaceId: identity.workspaceId,
          workspaceName: identity.workspaceName,
          agentName: agent.name,
          agentId: agent.id,
          type,
          ip: normalizeIp(c.ip),
          code: action === "disconnect" ? c.statusCode : null,
          reason: action === "disconnect" && c.reason ? c.reason : null,
        });
      } catch (err) {
        throw internal("upsert connection log", err);
      }
      return create(EmptySchema);
    },
  };
}

/**
 * The connection type: from `app_name` (API 2.13, which names the type, e.g. "ssh", "vscode",
 * "port_forwarding"), else from the deprecated `type` enum.
 */
function connectionType(appName: string, legacy: Connection_Type): ConnectionType {
  if (appName !== "") {
    const name = appName.toLowerCase().replaceAll("-", "_");
    if ((CONNECTION_TYPES as readonly string[]).includes(name)) return name as ConnectionType;
    throw invalid(`unknown connection type "${appName}"`);
  }
  const type = LEGACY_TYPES.toDb(legacy);
  if (type === undefined) throw invalid(`unknown connection type ${Connection_Type[legacy] ?? legacy}`);
  return type;
}

/** "localhost" means the loopback address; anything not an IP address is stored as NULL. */
function normalizeIp(ip: string): string | null {
  if (ip === "localhost") return "127.0.0.1";
  return isIP(ip) === 0 ? null : ip;
}
