import type { ServiceImpl } from "@connectrpc/connect";
import type { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { appStatusApi } from "./app-status.js";
import { appsApi } from "./apps.js";
import { bannersApi } from "./banners.js";
import { boundaryLogsApi } from "./boundary-logs.js";
import { connectionsApi } from "./connections.js";
import { agentApiContext, type AgentApiOptions } from "./context.js";
import { lifecycleApi } from "./lifecycle.js";
import { logsApi } from "./logs.js";
import { manifestApi } from "./manifest.js";
import { metadataApi } from "./metadata.js";
import { resourcesApi } from "./resources.js";
import { scriptsApi } from "./scripts.js";
import { startupApi } from "./startup.js";
import { statsApi } from "./stats.js";
import { subAgentsApi } from "./subagents.js";

/**
 * The `coder.agent.v2.Agent` service, composed from one module per RPC group, each handed the
 * same options whole. PushContextState is left out on purpose: the router answers it
 * Unimplemented, as Coder's stub does.
 */
export function agentService(options: AgentApiOptions): Partial<ServiceImpl<typeof Agent>> {
  const api = agentApiContext(options);
  return {
    ...manifestApi(api),
    ...bannersApi(api),
    ...statsApi(api),
    ...lifecycleApi(api),
    ...appsApi(api),
    ...startupApi(api),
    ...metadataApi(api),
    ...logsApi(api),
    ...scriptsApi(api),
    ...resourcesApi(api),
    ...connectionsApi(api),
    ...subAgentsApi(api),
    ...appStatusApi(api),
    ...boundaryLogsApi(api),
  };
}
