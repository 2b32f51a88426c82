import { createHash, randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  CreateSubAgentRequest_App_OpenIn,
  CreateSubAgentRequest_App_SharingLevel,
  CreateSubAgentRequest_DisplayApp,
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
import type { AppOpenIn, AppSharingLevel, DisplayApp } from "../db/enums.js";
import { isUniqueViolation } from "../db/errors.js";
import type { InsertAgentParams, WorkspaceAgent } from "../db/queries/agents.js";
import type { InsertAppParams } from "../db/queries/apps.js";
import { NAME_PATTERN } from "../provision/spec.js";
import { internal, invalid, type LoadCaller } from "./caller.js";
import type { Clock } from "./publish.js";
import { uuidFromBytes, uuidToBytes } from "./uuid-bytes.js";

/** What the sub-agent RPCs need (agent-api.md §2.13). */
export interface SubAgentsDeps {
  loadCaller: LoadCaller;
  getAgent(id: string): Promise<WorkspaceAgent | undefined>;
  insertAgent(p: InsertAgentParams): Promise<WorkspaceAgent>;
  upsertApp(p: InsertAppParams): Promise<unknown>;
  updateSubAgentDisplay(p: { id: string; displayApps: DisplayApp[]; directory: string; now: Date }): Promise<void>;
  listSubAgents(parentId: string): Promise<WorkspaceAgent[]>;
  softDeleteSubAgent(p: { id: string; parentId: string; now: Date }): Promise<boolean>;
  now: Clock;
}

/** `workspace_agents.name` is varchar(64). */
const MAX_AGENT_NAME = 64;
/** Coder's app slug rule: lower-case letters, digits and single inner hyphens. */
const APP_SLUG_PATTERN = /^[a-z0-9](?:-?[a-z0-9])*$/;
/** Characters of the base32hex SHA-256 prefix that makes a sub-agent's app slugs unique per workspace. */
const SLUG_HASH_CHARS = 8;
const BASE32HEX = "0123456789abcdefghijklmnopqrstuv";

const DISPLAY_APPS: Record<CreateSubAgentRequest_DisplayApp, DisplayApp> = {
  [CreateSubAgentRequest_DisplayApp.VSCODE]: "vscode",
  [CreateSubAgentRequest_DisplayApp.VSCODE_INSIDERS]: "vscode_insiders",
  [CreateSubAgentRequest_DisplayApp.WEB_TERMINAL]: "web_terminal",
  [CreateSubAgentRequest_DisplayApp.SSH_HELPER]: "ssh_helper",
  [CreateSubAgentRequest_DisplayApp.PORT_FORWARDING_HELPER]: "port_forwarding_helper",
};

const SHARING_LEVELS: Record<CreateSubAgentRequest_App_SharingLevel, AppSharingLevel> = {
  [CreateSubAgentRequest_App_SharingLevel.OWNER]: "owner",
  [CreateSubAgentRequest_App_SharingLevel.AUTHENTICATED]: "authenticated",
  [CreateSubAgentRequest_App_SharingLevel.PUBLIC]: "public",
  [CreateSubAgentRequest_App_SharingLevel.ORGANIZATION]: "organization",
};

const OPEN_IN: Record<CreateSubAgentRequest_App_OpenIn, AppOpenIn> = {
  [CreateSubAgentRequest_App_OpenIn.SLIM_WINDOW]: "slim-window",
  [CreateSubAgentRequest_App_OpenIn.TAB]: "tab",
};

/**
 * CreateSubAgent, DeleteSubAgent, ListSubAgents: agents a workspace agent starts itself (dev
 * containers). A sub-agent shares its parent's resource, so its token dials the endpoint like any
 * agent's, until it is (soft-)deleted.
 */
export function subAgentsApi(deps: SubAgentsDeps) {
  return {
    async createSubAgent(req: CreateSubAgentRequest, ctx: HandlerContext): Promise<CreateSubAgentResponse> {
      const { agent: parent } = await deps.loadCaller(ctx);
      const displayApps = req.displayApps.map((d, i) => {
        const name = DISPLAY_APPS[d];
        if (name === undefined) throw invalid(`display_apps[${i}]: unknown display app ${d}`);
        return name;
      });
      const now = deps.now();

      if (req.id !== undefined) {
        // A sub-agent the provisioner pre-created (API 2.8): adopt it.
        const id = uuidFromBytes(req.id, "parse sub agent ID");
        const existing = await deps.getAgent(id).catch((err: unknown) => {
          throw internal("get sub agent", err);
        });
        if (existing === undefined) throw new ConnectError(`sub agent ${id} not found`, Code.NotFound);
        if (existing.parentId !== parent.id) throw new ConnectError(`sub agent ${id} does not belong to this parent`, Code.FailedPrecondition);
        await deps.updateSubAgentDisplay({ id, displayApps, directory: req.directory, now }).catch((err: unknown) => {
          throw internal("update sub agent", err);
        });
        return create(CreateSubAgentResponseSchema, { agent: toSubAgent(existing) });
      }

      if (!NAME_PATTERN.test(req.name) || req.name.length > MAX_AGENT_NAME) {
        throw invalid(`name: "${req.name}" must be 1–${MAX_AGENT_NAME} letters, digits and single hyphens, not starting or ending with one`);
      }
      let child: WorkspaceAgent;
      try {
        child = await deps.insertAgent({
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
          await deps.upsertApp(appParams(child, app, index, now));
        } catch (err) {
          appCreationErrors.push({ index, error: `insert app: ${(err as Error).message}` });
        }
      }
      return create(CreateSubAgentResponseSchema, { agent: toSubAgent(child), appCreationErrors });
    },

    async deleteSubAgent(req: DeleteSubAgentRequest, ctx: HandlerContext): Promise<DeleteSubAgentResponse> {
      const { agent } = await deps.loadCaller(ctx);
      const id = uuidFromBytes(req.id, "parse sub agent ID");
      // As Coder: deleting what isn't a live child of this agent changes nothing and is no error,
      // so an agent retrying after a lost answer isn't told its delete failed.
      await deps.softDeleteSubAgent({ id, parentId: agent.id, now: deps.now() }).catch((err: unknown) => {
        throw internal("delete sub agent", err);
      });
      return create(DeleteSubAgentResponseSchema);
    },

    async listSubAgents(_req: unknown, ctx: HandlerContext): Promise<ListSubAgentsResponse> {
      const { agent } = await deps.loadCaller(ctx);
      const children = await deps.listSubAgents(agent.id).catch((err: unknown) => {
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
  if (!APP_SLUG_PATTERN.test(slug)) return `app slug "${slug}" must be lower-case letters, digits and single hyphens, not starting or ending with one`;
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
    sharingLevel: SHARING_LEVELS[app.share ?? CreateSubAgentRequest_App_SharingLevel.OWNER] ?? "owner",
    healthcheckUrl: app.healthcheck?.url ?? "",
    healthcheckInterval: app.healthcheck?.interval ?? 0,
    healthcheckThreshold: app.healthcheck?.threshold ?? 0,
    displayOrder: app.order ?? index,
    hidden: app.hidden ?? false,
    openIn: OPEN_IN[app.openIn ?? CreateSubAgentRequest_App_OpenIn.SLIM_WINDOW] ?? "slim-window",
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
