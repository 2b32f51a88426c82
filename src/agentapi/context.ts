import type { Batcher } from "../db/batcher.js";
import type { Queryable } from "../db/database.js";
import { publishWorkspaceEvent, type WorkspaceEvent } from "../db/events.js";
import type { Pubsub } from "../db/pubsub.js";
import type { MetadataUpdate } from "../db/queries/metadata.js";
import type { AgentStatsRow } from "../db/queries/stats.js";
import type { ServerConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { DerpMapSource } from "../tailnet/derp-map-source.js";
import type { BannerSettings } from "./banners.js";
import type { IdentityCheck } from "../server/identity-watch.js";
import { callerLoader, callerRowLoader, type LoadCaller, type LoadCallerRow } from "./caller.js";

/** The server's clock; handlers never read time any other way, so tests can see what they wrote. */
export type Clock = () => Date;

/** The deployment settings RPCs answer with. */
export type AgentApiConfig = Pick<ServerConfig, "accessUrl" | "appHostname" | "blockDirectConnections" | "derpForceWebsockets" | "agentStatsIntervalMs">;

/**
 * What the Agent service is built from, handed whole to every RPC group, as coderd's
 * `agentapi.Options`: the database, pubsub, clock, logger, settings and the shared batchers.
 */
export interface AgentApiOptions {
  db: Queryable;
  pubsub: Pubsub;
  logger: Logger;
  /** Default: the wall clock. */
  clock?: Clock;
  config: AgentApiConfig;
  /** The deployment's banners (`--banners`). */
  banners: BannerSettings;
  /** The DERP map every manifest carries (`--derp-map`). */
  derpMaps: DerpMapSource;
  /** Whether a caller's identity may still be served (the identity watch). */
  identities: IdentityCheck;
  batchers: {
    stats: Batcher<AgentStatsRow>;
    metadata: Batcher<MetadataUpdate>;
    /** Workspace ids marked used. */
    usage: Batcher<string>;
  };
}

/**
 * Publishes a `workspace_owner:<ownerId>` event. Never rejects: a failed publish is logged and
 * dropped, so it can't fail the RPC that caused it.
 */
export type PublishWorkspaceEventFn = (ownerId: string, event: WorkspaceEvent) => Promise<void>;

/** The options with what every group shares, built once per service. */
export interface AgentApiContext extends AgentApiOptions {
  clock: Clock;
  /** Checks the caller's identity, without a statement while identity events flow. */
  loadCaller: LoadCaller;
  /** The same check, then the agent row as it is now: for RPCs that answer from its fields. */
  loadCallerRow: LoadCallerRow;
  publishWorkspaceEvent: PublishWorkspaceEventFn;
}

/** Fills in the defaults and the shared helpers. */
export function agentApiContext(options: AgentApiOptions): AgentApiContext {
  const { db, pubsub, logger } = options;
  return {
    ...options,
    clock: options.clock ?? (() => new Date()),
    loadCaller: callerLoader(options.identities),
    loadCallerRow: callerRowLoader(options.identities, db),
    publishWorkspaceEvent: async (ownerId, event) => void (await publishWorkspaceEvent(pubsub, ownerId, event, logger)),
  };
}
