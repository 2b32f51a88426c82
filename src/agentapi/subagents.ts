import { createHash, randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  CreateSubAgentRequest_App_OpenIn,
  CreateSubAgentRequest_App_OpenInSchema,
  CreateSubAgentRequest_App_SharingLevel,
  CreateSubAgentRequest_App_SharingLevelSchema,
  CreateSubAgentRequest_DisplayAppSchema,
  CreateSubAgentResponseSchema,
  DeleteSubAgentResponseSchema,
  ListSubAgentsResponseSchema,
  SubAgentSchema,
  type CreateSubAgentRequest,
  type CreateSubAgentRequest_App,
  type CreateSubAgentResponse,
  type DeleteSubAgentRequest,
  type DeleteSubAgentResponse,
  type ListSubAgentsResponse,
  type SubAgent,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { APP_OPEN_IN, APP_SHARING_LEVELS, DISPLAY_APPS } from "../db/enums.js";
import { isUniqueViolation } from "../db/errors.js";
import { getAgentById, insertAgent, type WorkspaceAgent } from "../db/queries/agents.js";
import { upsertApp, type InsertAppParams } from "../db/queries/apps.js";
import { countSubAgents, listSubAgents, softDeleteSubAgent, updateSubAgentDisplay } from "../db/queries/sub-agents.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import { isAppSlug, MAX_AGENT_NAME, nameProblem } from "../provision/names.js";
import type { AgentApiContext } from "./context.js";
import { MAX_APPS_PER_SUB_AGENT, MAX_DISPLAY_APPS_PER_SUB_AGENT, MAX_SUB_AGENTS_PER_AGENT } from "./limits.js";
import { internal, invalid } from "./rpc-errors.js";
import { uuidFromBytes, uuidToBytes } from "./uuid-bytes.js";

/** Characters of the base32hex SHA-256 prefix that makes a sub-agent's app slugs unique per workspace. */
const SLUG_HASH_CHARS = 8;
const BASE32HEX = "0123456789abcdefghijklmnopqrstuv";

const DISPLAY_APP_NAMES = enumMapping(CreateSubAgentRequest_DisplayAppSchema, DISPLAY_APPS);
const SHARING_LEVELS = enumMapping(CreateSubAgentRequest_App_SharingLevelSchema, APP_SHARING_LEVELS);
const OPEN_IN = enumMapping(CreateSubAgentRequest_App_OpenInSchema, APP_OPEN_IN);

/**
 * CreateSubAgent, DeleteSubAgent, ListSubAgents: agents a workspace agent starts itself (dev
 * containers). A sub-agent shares its parent's resource, so its token dials the endpoint like any
 * agent's, until it is (soft-)deleted. Each agent may have {@link MAX_SUB_AGENTS_PER_AGENT} live
 * sub-agents, and sub-agents can't have their own.
 */
export function subAgentsApi(api: AgentApiContext) {
  const { db } = api;
  return {
    async createSubAgent(req: CreateSubAgentRequest, ctx: HandlerContext): Promise<CreateSubAgentResponse> {
      const { agent: parent } = await api.loadCallerRow(ctx);
      // Depth 1: a dev container's agent is a leaf, so a token can't mint tokens without end.
      if (parent.parentId !== null) throw new ConnectError("a sub-agent cannot create sub-agents", Code.PermissionDenied);
      if (req.displayApps.length > MAX_DISPLAY_APPS_PER_SUB_AGENT) {
        throw new ConnectError(`${req.displayApps.length} display apps; at most ${MAX_DISPLAY_APPS_PER_SUB_AGENT}`, Code.ResourceExhausted);
      }
      if (req.apps.length > MAX_APPS_PER_SUB_AGENT) throw new ConnectError(`${req.apps.length} apps; at most ${MAX_APPS_PER_SUB_AGENT} per sub-agent`, Code.ResourceExhausted);
      const displayApps = req.displayApps.map((d, i) => {
        const name = DISPLAY_APP_NAMES.toDb(d);
        if (name === undefined) throw invalid(`display_apps[${i}]: unknown display app ${d}`);
        return name;
      });
      const now = api.clock();

      if (req.id !== undefined) {
        // A sub-agent the provisioner pre-created (API 2.8): adopt it.
        const id = uuidFromBytes(req.id, "parse sub agent ID");
        const existing = await getAgentById(db, id).catch((err: unknown) => {
          throw internal("get sub agent", err);
        });
        // Someone else's agent and no agent at all answer alike: the caller learns nothing of other tenants.
        if (existing === undefined || existing.parentId !== parent.id) throw new ConnectError(`sub agent ${id} not found`, Code.NotFound);
        await updateSubAgentDisplay(db, { id, displayApps, directory: req.directory, now }).catch((err: unknown) => {
          throw internal("update sub agent", err);
        });
        return create(CreateSubAgentResponseSchema, { agent: toSubAgent(existing) });
      }

      const nameError = nameProblem(req.name, MAX_AGENT_NAME);
      if (nameError !== undefined) throw invalid(`name: ${nameError}`);
      // Checked before the insert, so concurrent calls of one agent may pass it by their number in flight.
      const live = await countSubAgents(db, parent.id).catch((err: unknown) => {
        throw internal("count sub agents", err);
      });
      if (live >= MAX_SUB_AGENTS_PER_AGENT) throw new ConnectError(`this agent has ${live} sub-agents; at most ${MAX_SUB_AGENTS_PER_AGENT}`, Code.ResourceExhausted);
      let child: WorkspaceAgent;
      try {
        child = await insertAgent(db, {
          id: randomUUID(),
          parentId: parent.id,
          resourceId: parent.resourceId,
          name: req.name,
          authToken: randomUUID(),
          architecture: req.architecture,
          operatingSystem: req.operatingSystem,
          directory: req.directory,
          connectionTimeoutSeconds: parent.connectionTimeoutSeconds,
          troubleshootingUrl: parent.troubleshootingUrl,
          apiKeyScope: parent.apiKeyScope,
          displayApps,
          motdFile: "",
          now,
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new ConnectError(`a workspace agent named "${req.name}" already exists in this build`, Code.AlreadyExists);
        throw internal("insert sub agent", err);
      }

      // Each app on its own: a bad one is reported, the others and the agent still stand.
      const appCreationErrors: { index: number; field?: string; error: string }[] = [];
      const slugs = new Set<string>();
      for (const [index, app] of req.apps.entries()) {
        const slugError = checkSlug(app.slug, slugs);
        if (slugError !== undefined) {
          appCreationErrors.push({ index, field: "slug", error: slugError });
          continue;
        }
        slugs.add(app.slug);
        try {
          await upsertApp(db, appParams(child, app, index, now));
        } catch (err) {
          appCreationErrors.push({ index, error: `insert app: ${(err as Error).message}` });
        }
      }
      return create(CreateSubAgentResponseSchema, { agent: toSubAgent(child), appCreationErrors });
    },

    async deleteSubAgent(req: DeleteSubAgentRequest, ctx: HandlerContext): Promise<DeleteSubAgentResponse> {
      const { agent } = await api.loadCaller(ctx);
      const id = uuidFromBytes(req.id, "parse sub agent ID");
      // As Coder: deleting what isn't a live child of this agent changes nothing and is no error,
      // so an agent retrying after a lost answer isn't told its delete failed.
      await softDeleteSubAgent(db, { id, parentId: agent.id, now: api.clock() }).catch((err: unknown) => {
        throw internal("delete sub agent", err);
      });
      return create(DeleteSubAgentResponseSchema);
    },

    async listSubAgents(_req: unknown, ctx: HandlerContext): Promise<ListSubAgentsResponse> {
      const { agent } = await api.loadCaller(ctx);
      const children = await listSubAgents(db, agent.id).catch((err: unknown) => {
        throw internal("list sub agents", err);
      });
      return create(ListSubAgentsResponseSchema, { agents: children.map(toSubAgent) });
    },
  };
}

function toSubAgent(a: WorkspaceAgent): SubAgent {
  return create(SubAgentSchema, { name: a.name, id: uuidToBytes(a.id), authToken: uuidToBytes(a.authToken) });
}

function checkSlug(slug: string, seen: Set<string>): string | undefined {
  if (slug === "") return "app slug must not be empty";
  if (!isAppSlug(slug)) return `app slug "${slug}" must be lower-case letters, digits and single hyphens, not starting or ending with one`;
  if (seen.has(slug)) return `app slug "${slug}" is used by an earlier app`;
  return undefined;
}

function appParams(agent: WorkspaceAgent, app: CreateSubAgentRequest_App, index: number, now: Date): InsertAppParams {
  return {
    id: randomUUID(),
    agentId: agent.id,
    slug: subAgentAppSlug(agent.name, app.slug),
    displayName: app.displayName ?? "",
    icon: app.icon ?? "",
    command: app.command ?? null,
    url: app.url ?? null,
    external: app.external ?? false,
    subdomain: app.subdomain ?? false,
    sharingLevel: SHARING_LEVELS.toDb(app.share ?? CreateSubAgentRequest_App_SharingLevel.OWNER) ?? "owner",
    healthcheckUrl: app.healthcheck?.url ?? "",
    healthcheckInterval: app.healthcheck?.interval ?? 0,
    healthcheckThreshold: app.healthcheck?.threshold ?? 0,
    displayOrder: app.order ?? index,
    hidden: app.hidden ?? false,
    openIn: OPEN_IN.toDb(app.openIn ?? CreateSubAgentRequest_App_OpenIn.SLIM_WINDOW) ?? "slim-window",
    displayGroup: app.group ?? null,
    now,
  };
}

/**
 * The stored slug of a sub-agent's app: 8 lower-case base32hex characters of
 * SHA-256(`<agent name>/<slug>`), a hyphen, the slug. Slugs must be unique per workspace and a
 * dev container's agent doesn't know its siblings' apps; the hash makes a clash improbable (as Coder).
 */
export function subAgentAppSlug(agentName: string, slug: string): string {
  const digest = createHash("sha256").update(`${agentName}/${slug}`).digest();
  // 8 base32 characters are exactly the first 40 bits.
  let bits = 0n;
  for (let i = 0; i < 5; i++) bits = (bits << 8n) | BigInt(digest[i]!);
  let prefix = "";
  for (let i = SLUG_HASH_CHARS - 1; i >= 0; i--) prefix += BASE32HEX[Number((bits >> BigInt(i * 5)) & 31n)];
  return `${prefix}-${slug}`;
}
