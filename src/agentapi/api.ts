import type { ServiceImpl } from "@connectrpc/connect";
import type { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { bannersApi, type BannerSettings } from "./banners.js";

/** What the Agent service is built from; each RPC group takes only the part it needs. */
export interface AgentApiDeps {
  banners: BannerSettings;
}

/**
 * The `coder.agent.v2.Agent` service, composed from one module per RPC group. RPCs not built
 * yet are left out, and the router answers them Unimplemented.
 */
export function agentService(deps: AgentApiDeps): Partial<ServiceImpl<typeof Agent>> {
  const banners = bannersApi(deps.banners);
  return {
    getServiceBanner: () => banners.getServiceBanner(),
    getAnnouncementBanners: () => banners.getAnnouncementBanners(),
  };
}
