import { clone, create } from "@bufbuild/protobuf";
import { DurationSchema, durationFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import {
  ManifestSchema,
  WorkspaceAgentDevcontainerSchema,
  WorkspaceAgentMetadata_DescriptionSchema,
  WorkspaceAgentScriptSchema,
  WorkspaceApp_HealthSchema,
  WorkspaceApp_SharingLevelSchema,
  WorkspaceAppSchema,
  type Manifest,
  type WorkspaceApp,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { DERPMapSchema, type DERPMap } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { APP_HEALTHS, APP_SHARING_LEVELS } from "../db/enums.js";
import type { WorkspaceApp as AppRow } from "../db/queries/apps.js";
import { groupedStatement } from "../db/grouped-statement.js";
import { getManifestRowsOf, type JsonRow, type ManifestRows } from "../db/queries/manifest.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiConfig, AgentApiContext } from "./context.js";
import { agentNotFound } from "./caller.js";
import { internal } from "./rpc-errors.js";
import { uuidToBytes } from "./uuid-bytes.js";

/** STUN port that tells a client the node has no STUN (block-direct). */
const NO_STUN_PORT = -1;

const SHARING_LEVELS = enumMapping(WorkspaceApp_SharingLevelSchema, APP_SHARING_LEVELS);
const HEALTHS = enumMapping(WorkspaceApp_HealthSchema, APP_HEALTHS);

/**
 * GetManifest: everything an agent needs to start, in one statement (a fleet reconnecting at once
 * costs one round trip per agent); no writes, no events.
 */
/** Manifests one statement reads at most; with two in flight, a reconnect storm leaves the pool to other RPCs. */
const MANIFESTS_PER_STATEMENT = 200;
const MANIFEST_STATEMENTS_IN_FLIGHT = 2;
/** Under load, manifest statements go at most every this long. */
const MANIFEST_STATEMENT_INTERVAL_MS = 10;

export function manifestApi(api: AgentApiContext) {
  const { db } = api;
  // Every agent asks for its manifest as it connects: grouped, a fleet's restart is a few statements a round trip.
  const manifestRows = groupedStatement<string, ManifestRows | undefined>({
    maxKeys: MANIFESTS_PER_STATEMENT,
    maxInFlight: MANIFEST_STATEMENTS_IN_FLIGHT,
    minIntervalMs: MANIFEST_STATEMENT_INTERVAL_MS,
    run: (agentIds) => getManifestRowsOf(db, agentIds),
  });
  return {
    async getManifest(_req: unknown, ctx: HandlerContext): Promise<Manifest> {
      const { identity } = await api.loadCaller(ctx);
      const [rows, derpMap] = await Promise.all([manifestRows(identity.agentId), api.derpMaps.current()]).catch((err: unknown) => {
        throw internal("fetching workspace agent data", err);
      });
      if (rows === undefined) throw agentNotFound(identity.agentId);
      const { apps, scripts, metadata, devcontainers } = rows;
      const agent = { id: identity.agentId, name: rows.agentName, environmentVariables: rows.environmentVariables, directory: rows.directory, motdFile: rows.motdFile, parentId: rows.parentId };
      const workspace = { id: rows.workspaceId, name: rows.workspaceName };
      const owner = { username: rows.ownerUsername };
      const names = { agent: agent.name, workspace: workspace.name, owner: owner.username };
      const settings = api.config;
      return create(ManifestSchema, {
        agentId: uuidToBytes(agent.id),
        agentName: agent.name,
        ownerUsername: owner.username,
        workspaceId: uuidToBytes(workspace.id),
        workspaceName: workspace.name,
        // agentgate has no external-auth providers.
        gitAuthConfigs: 0,
        environmentVariables: agent.environmentVariables ?? {},
        directory: agent.directory,
        vsCodePortProxyUri: vsCodePortProxyUri(settings, names),
        motdPath: agent.motdFile,
        disableDirectConnections: settings.blockDirectConnections,
        derpForceWebsockets: settings.derpForceWebsockets,
        parentId: agent.parentId === null ? undefined : uuidToBytes(agent.parentId),
        derpMap: settings.blockDirectConnections ? withoutStun(derpMap) : derpMap,
        scripts: scripts.map((s) =>
          create(WorkspaceAgentScriptSchema, {
            id: uuidToBytes(s.id),
            logSourceId: uuidToBytes(s.logSourceId),
            logPath: s.logPath,
            script: s.script,
            cron: s.cron,
            runOnStart: s.runOnStart,
            runOnStop: s.runOnStop,
            startBlocksLogin: s.startBlocksLogin,
            timeout: durationFromMs(s.timeoutSeconds * 1000),
            displayName: s.displayName,
          }),
        ),
        apps: apps.map((a) => appToProto(a, settings.appHostname, names)),
        metadata: metadata.map((m) =>
          create(WorkspaceAgentMetadata_DescriptionSchema, {
            displayName: m.displayName,
            key: m.key,
            script: m.script,
            interval: secondsAsNanos(m.interval),
            timeout: secondsAsNanos(m.timeout),
          }),
        ),
        devcontainers: devcontainers.map((d) =>
          create(WorkspaceAgentDevcontainerSchema, {
            id: uuidToBytes(d.id),
            workspaceFolder: d.workspaceFolder,
            configPath: d.configPath,
            name: d.name,
            subagentId: d.subagentId === null ? undefined : uuidToBytes(d.subagentId),
          }),
        ),
      });
    },
  };
}

interface Names {
  agent: string;
  workspace: string;
  owner: string;
}

/** `<app-or-port>--<agent>--<workspace>--<owner>`: the subdomain label of Coder's application URLs. */
function applicationLabel(appOrPort: string, n: Names): string {
  return `${appOrPort}--${n.agent}--${n.workspace}--${n.owner}`;
}

/**
 * The port-forwarding URL template VS Code uses, e.g. `https://{{port}}--main--ws--alice.apps.example.com:8443`.
 * Empty without a wildcard app host. The access URL's port is applied when the wildcard host has none.
 */
export function vsCodePortProxyUri(settings: Pick<AgentApiConfig, "accessUrl" | "appHostname">, n: Names): string {
  if (settings.appHostname === "") return "";
  let host = settings.appHostname;
  if (!/:\d+$/.test(host) && settings.accessUrl.port !== "") host += `:${settings.accessUrl.port}`;
  const scheme = settings.accessUrl.protocol.replace(/:$/, "");
  return `${scheme}://${host.replace("*", applicationLabel("{{port}}", n))}`;
}

function appToProto(a: JsonRow<AppRow>, appHostname: string, names: Names): WorkspaceApp {
  const sharingLevel = SHARING_LEVELS.toProto(a.sharingLevel);
  const health = HEALTHS.toProto(a.health);
  // The enums in the database and the proto are the same sets; a stranger is a corrupt row.
  if (sharingLevel === undefined) throw internal("converting workspace apps", new Error(`unknown app sharing level "${a.sharingLevel}"`));
  if (health === undefined) throw internal("converting workspace apps", new Error(`unknown app health "${a.health}"`));
  return create(WorkspaceAppSchema, {
    id: uuidToBytes(a.id),
    url: a.url ?? "",
    external: a.external,
    slug: a.slug,
    displayName: a.displayName,
    command: a.command ?? "",
    icon: a.icon,
    subdomain: a.subdomain,
    // As Coder: only a subdomain app on a deployment with a wildcard host has a subdomain name.
    subdomainName: a.subdomain && appHostname !== "" ? applicationLabel(a.slug, names) : "",
    sharingLevel,
    healthcheck: {
      url: a.healthcheckUrl,
      interval: durationFromMs(a.healthcheckInterval * 1000),
      threshold: a.healthcheckThreshold,
    },
    health,
    hidden: a.hidden,
  });
}

/**
 * Coder's quirk: metadata interval and timeout go out as Durations whose nanosecond count is the
 * stored number of seconds, and agents read them back as plain integers.
 */
function secondsAsNanos(seconds: number): Duration {
  const nanosPerSecond = 1_000_000_000;
  return create(DurationSchema, { seconds: BigInt(Math.floor(seconds / nanosPerSecond)), nanos: seconds % nanosPerSecond });
}

/** The map with every node's STUN turned off, for deployments that block direct connections. */
function withoutStun(map: DERPMap): DERPMap {
  const copy = clone(DERPMapSchema, map);
  for (const region of Object.values(copy.regions)) for (const node of region.nodes) node.stunPort = NO_STUN_PORT;
  return copy;
}
