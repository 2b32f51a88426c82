import { z } from "zod";
import { stringify as toYaml } from "yaml";
import { filePath, listOf, text } from "../config/flag-kinds.js";
import { flag } from "../config/flag.js";
import { readStructuredFile } from "../config/structured-file.js";
import { specFromMessage, specToMessage } from "../control/spec-message.js";
import { listAgentOverviews } from "../db/queries/agent-overviews.js";
import {
  buildWorkspace,
  createWorkspace,
  deleteWorkspace,
  readCurrentSpec,
  type CurrentSpec,
  type ProvisionResult,
} from "../provision/provision.js";
import { checkUniqueAgentNames, defaultAgent, parseWorkspaceSpec, SpecError, type WorkspaceSpec } from "../provision/spec.js";
import { defineCommand } from "./command-spec.js";
import { controlClientFor, controlFlags, type ControlClient, type ControlTarget } from "./control-client.js";
import { withDatabase } from "./database-options.js";
import { jsonFlag } from "./json-flag.js";
import { table } from "./table.js";

const WORKSPACE_ARG = [{ name: "WORKSPACE", help: "an id or owner/name" }] as const;

/** The flags that say what a build's agents are. */
const specFlags = {
  spec: flag(filePath, { defaultNote: "create: none; build: the latest build's spec", help: "workspace spec, JSON or YAML (.yaml, .yml); workspace show prints one" }),
  agent: flag(listOf(z.string(), "NAME"), { help: "add an agent with default settings" }),
};

const RESULT_JSON = `--json prints {"workspace_id", "build_id", "build_number", "agents": [{"id", "name", "token"}]}.`;

const create = defineCommand({
  name: "create",
  summary: "create a workspace and its build 1",
  description: `Creates the owner if missing, the workspace and build 1. Its agents come from --spec plus one default agent per --agent; with neither, one agent named "main". Prints each agent's token.`,
  flags: {
    owner: flag(text, { placeholder: "USER", required: true, help: "the owner's username (created if missing)" }),
    name: flag(text, { placeholder: "NAME", required: true, help: "the workspace's name, unique per owner" }),
    ...specFlags,
    ...jsonFlag,
    ...controlFlags,
  },
  epilog: RESULT_JSON,
  async run({ values }) {
    const spec = (await loadSpec(values.spec, values.agent)) ?? { agents: [defaultAgent("main")] };
    const result = await (await provisioner(values)).create({ owner: values.owner, name: values.name, spec });
    printResult(result, values.json, `created workspace ${values.owner}/${values.name}`);
  },
});

const build = defineCommand({
  name: "build",
  summary: "make the next build of a workspace",
  description: `Makes the next build of WORKSPACE with new agents and tokens; the older build's agents become outdated and are refused. Without --spec and --agent, the latest build's spec (agents, apps, scripts, metadata, devcontainers, monitors) is built again, as a template rebuild does.`,
  args: WORKSPACE_ARG,
  flags: { ...specFlags, ...jsonFlag, ...controlFlags },
  epilog: RESULT_JSON,
  async run({ values, args: [ref] }) {
    const spec = await loadSpec(values.spec, values.agent);
    const result = await (await provisioner(values)).build({ workspace: ref!, spec });
    printResult(result, values.json, `built workspace ${ref}`);
  },
});

const show = defineCommand({
  name: "show",
  summary: "print a workspace's current spec",
  description: `Prints the spec of WORKSPACE's latest build, every default filled in: as YAML (a valid --spec file), or with --json as {"workspace_id", "workspace": "owner/name", "build_number", "spec"}.`,
  args: WORKSPACE_ARG,
  flags: { ...jsonFlag, ...controlFlags },
  async run({ values, args: [ref] }) {
    const current = await (await provisioner(values)).show(ref!);
    const workspace = `${current.owner}/${current.workspaceName}`;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ workspace_id: current.workspaceId, workspace, build_number: current.buildNumber, spec: current.spec })}\n`);
    } else {
      process.stdout.write(`# ${workspace}, build ${current.buildNumber} (workspace ${current.workspaceId})\n${toYaml(current.spec)}`);
    }
  },
});

/** One line of `workspace list --json`. */
export interface WorkspaceLine {
  workspace_id: string;
  workspace: string;
  build_number: number;
  agents: string[];
}

const list = defineCommand({
  name: "list",
  summary: "list workspaces with their latest build",
  description: `Lists every workspace with its latest build number and agents; with --json, an array of {"workspace_id", "workspace": "owner/name", "build_number", "agents": [names]}.`,
  flags: { ...jsonFlag, ...controlFlags },
  async run({ values }) {
    const lines = await (await provisioner(values)).list();
    if (values.json) process.stdout.write(`${JSON.stringify(lines)}\n`);
    else if (lines.length === 0) process.stdout.write("no workspaces\n");
    else process.stdout.write(table([["WORKSPACE", "BUILD", "AGENTS", "ID"], ...lines.map((l) => [l.workspace, String(l.build_number), l.agents.join(","), l.workspace_id])]));
  },
});

const remove = defineCommand({
  name: "delete",
  summary: "delete a workspace",
  description: "Soft-deletes WORKSPACE: its agents stop authenticating. With --json, prints {\"workspace_id\", \"deleted\": true}.",
  args: WORKSPACE_ARG,
  flags: { ...jsonFlag, ...controlFlags },
  async run({ values, args: [ref] }) {
    const workspaceId = await (await provisioner(values)).delete({ workspace: ref! });
    if (values.json) process.stdout.write(`${JSON.stringify({ workspace_id: workspaceId, deleted: true })}\n`);
    else process.stdout.write(`deleted workspace ${ref} (${workspaceId})\n`);
  },
});

/**
 * `agentgate workspace create|build|show|list|delete`: provisioning through a running server's
 * control API, or straight to the database when there is none to go through.
 */
export const workspaceCommand = defineCommand({
  name: "workspace",
  summary: "create, build, show, list or delete workspaces",
  description: `Provisioning. With --url, or while a server runs on the PGlite data folder, each command goes through the server's control API; otherwise to the database.`,
  subcommands: [create, build, show, list, remove],
});

/** The agents --spec and --agent name, or undefined when neither is given. */
async function loadSpec(file: string | undefined, agentNames: string[] | undefined): Promise<WorkspaceSpec | undefined> {
  if (file === undefined && agentNames === undefined) return undefined;
  const fromFile = file === undefined ? [] : parseWorkspaceSpec(await readStructuredFile(file, "--spec", (message) => new SpecError(message))).agents;
  const agents = [...fromFile, ...(agentNames ?? []).map(defaultAgent)];
  checkUniqueAgentNames(agents);
  return { agents };
}

/** Where provisioning happens: a server's control API or the database itself. */
interface Provisioner {
  create(p: { owner: string; name: string; spec: WorkspaceSpec }): Promise<ProvisionResult>;
  /** Without a spec, the latest build's again. */
  build(p: { workspace: string; spec: WorkspaceSpec | undefined }): Promise<ProvisionResult>;
  show(workspace: string): Promise<CurrentSpec>;
  list(): Promise<WorkspaceLine[]>;
  /** Resolves to the deleted workspace's id. */
  delete(p: { workspace: string }): Promise<string>;
}

async function provisioner(target: ControlTarget): Promise<Provisioner> {
  const client = await controlClientFor(target);
  return client === undefined ? databaseProvisioner(target) : controlProvisioner(client);
}

function controlProvisioner(client: ControlClient): Provisioner {
  // CreateWorkspaceResponse and BuildWorkspaceResponse have these fields in common.
  const result = (r: Omit<Awaited<ReturnType<ControlClient["createWorkspace"]>>, "$typeName">): ProvisionResult => ({
    workspace_id: r.workspaceId,
    build_id: r.buildId,
    build_number: r.buildNumber,
    agents: r.agents.map((a) => ({ id: a.id, name: a.name, token: a.token })),
  });
  return {
    create: async (p) => result(await client.createWorkspace({ owner: p.owner, name: p.name, spec: specToMessage(p.spec) })),
    build: async (p) => result(await client.buildWorkspace({ workspace: p.workspace, ...(p.spec ? { spec: specToMessage(p.spec) } : {}) })),
    show: async (workspace) => {
      const r = await client.getWorkspaceSpec({ workspace });
      return { workspaceId: r.workspaceId, owner: r.owner, workspaceName: r.workspaceName, buildNumber: r.buildNumber, spec: specFromMessage(r.spec) };
    },
    list: async () => workspaceLines((await client.listAgents({})).agents.map((a) => ({ ...a, workspace: `${a.owner}/${a.workspaceName}` }))),
    delete: async (p) => (await client.deleteWorkspace({ workspace: p.workspace })).workspaceId,
  };
}

function databaseProvisioner(where: ControlTarget): Provisioner {
  return {
    create: (p) => withDatabase(where, (db) => createWorkspace(db, p)),
    build: (p) => withDatabase(where, (db) => buildWorkspace(db, p)),
    show: (workspace) => withDatabase(where, (db) => readCurrentSpec(db, workspace)),
    list: async () => {
      const overviews = await withDatabase(where, (db) => listAgentOverviews(db));
      return workspaceLines(overviews.map((o) => ({ workspaceId: o.workspaceId, workspace: `${o.ownerUsername}/${o.workspaceName}`, buildNumber: o.buildNumber, agentName: o.agent.name })));
    },
    delete: async (p) => (await withDatabase(where, (db) => deleteWorkspace(db, p))).id,
  };
}

/** Agents, ordered by workspace, grouped into one line per workspace. */
function workspaceLines(agents: { workspaceId: string; workspace: string; buildNumber: number; agentName: string }[]): WorkspaceLine[] {
  const lines = new Map<string, WorkspaceLine>();
  for (const a of agents) {
    const line = lines.get(a.workspaceId) ?? { workspace_id: a.workspaceId, workspace: a.workspace, build_number: a.buildNumber, agents: [] };
    line.agents.push(a.agentName);
    lines.set(a.workspaceId, line);
  }
  return [...lines.values()];
}

function printResult(r: ProvisionResult, json: boolean, headline: string): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const lines = [`${headline}: workspace ${r.workspace_id}, build ${r.build_number} (${r.build_id})`];
  for (const a of r.agents) lines.push(`  agent ${a.name}  id ${a.id}  token ${a.token}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
