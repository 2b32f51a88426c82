import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import type { ServerConfig } from "../config.js";
import type { Database } from "../db/database.js";
import { getUserByUsername } from "../db/queries/users.js";
import type { Logger } from "../log.js";
import { requireAdminToken } from "./admin-auth.js";
import { readAgentSummaries } from "./agent-summary.js";
import { clientTokenHandlers } from "./client-tokens.js";
import { toConnectError } from "./errors.js";
import type { ServerStatsSampler } from "./server-stats.js";
import { watchAgents } from "./watch-agents.js";
import { watchWorkspaceAgents } from "./watch-workspace-agents.js";
import { readWorkspaceAgents } from "./workspace-agents.js";
import { workspaceHandlers } from "./workspaces.js";

/**
 * What the control service is built from, handed whole to every part of it: the database, the
 * logger, GetServerStats' figures, and the admin token (without one, every control call is
 * refused) and inactivity timeout (statuses are computed with it, as the server disconnects agents).
 */
export interface ControlOptions {
  db: Database;
  logger: Logger;
  stats: Pick<ServerStatsSampler, "snapshot">;
  config: Pick<ServerConfig, "adminToken" | "agentInactiveTimeoutMs">;
}

/**
 * The `agentgate.control.v1.ControlService` implementation. Every method checks the admin token
 * first, in the handler itself rather than in a router-wide interceptor, so no other service's
 * authentication can reach it or be reached by it.
 */
export function controlService(options: ControlOptions): ServiceImpl<typeof ControlService> {
  const { db, config } = options;
  const authorize = (ctx: HandlerContext) => requireAdminToken(ctx.requestHeader, config.adminToken);
  const workspaces = workspaceHandlers(options);
  const clientTokens = clientTokenHandlers(db);
  const ownerId = async (username: string) => {
    const owner = await getUserByUsername(db, username);
    if (owner === undefined) throw new ConnectError(`owner "${username}" not found`, Code.NotFound);
    return owner.id;
  };
  return {
    async createWorkspace(req, ctx) {
      authorize(ctx);
      return workspaces.createWorkspace(req);
    },
    async buildWorkspace(req, ctx) {
      authorize(ctx);
      return workspaces.buildWorkspace(req);
    },
    async getWorkspaceSpec(req, ctx) {
      authorize(ctx);
      return workspaces.getWorkspaceSpec(req);
    },
    async deleteWorkspace(req, ctx) {
      authorize(ctx);
      return workspaces.deleteWorkspace(req);
    },
    async listAgents(req, ctx) {
      authorize(ctx);
      const filter = req.owner === "" ? {} : { ownerId: await ownerId(req.owner) };
      return { agents: (await readAgentSummaries(db, filter, config.agentInactiveTimeoutMs)).agents };
    },
    async *watchAgents(req, ctx) {
      authorize(ctx);
      const owner = req.owner === "" ? undefined : await ownerId(req.owner);
      yield* watchAgents(options, owner, ctx.signal);
    },
    async getWorkspaceAgents(req, ctx) {
      authorize(ctx);
      try {
        return await readWorkspaceAgents(db, { workspace: req.workspace, logLimit: req.logLimit, inactiveTimeoutMs: config.agentInactiveTimeoutMs });
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async *watchWorkspaceAgents(req, ctx) {
      authorize(ctx);
      try {
        yield* await watchWorkspaceAgents(options, { workspace: req.workspace, logLimit: req.logLimit }, ctx.signal);
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async getServerStats(_req, ctx) {
      authorize(ctx);
      return options.stats.snapshot();
    },
    async issueClientToken(req, ctx) {
      authorize(ctx);
      return clientTokens.issueClientToken(req);
    },
    async revokeClientToken(req, ctx) {
      authorize(ctx);
      return clientTokens.revokeClientToken(req);
    },
  };
}
