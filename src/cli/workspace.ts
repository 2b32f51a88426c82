import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { specToMessage } from "../control/spec-message.js";
import { buildWorkspace, createWorkspace, deleteWorkspace, ProvisionError, type ProvisionResult } from "../provision/provision.js";
import { checkUniqueAgentNames, defaultAgent, parseWorkspaceSpec, SpecError, type WorkspaceSpec } from "../provision/spec.js";
import { controlClientFor, controlOptions, controlOptionsHelp, ControlTargetError, type ControlClient, type ControlFlagValues } from "./control-client.js";
import { databaseOptions, databaseOptionsHelp, openMigratedDatabase, type DatabaseFlagValues } from "./database-options.js";

const USAGE = `usage:
  agentgate workspace create --owner USER --name NAME [--agent NAME]... [--spec FILE] [--json]
  agentgate workspace build WORKSPACE [--agent NAME]... [--spec FILE] [--json]
  agentgate workspace delete WORKSPACE

WORKSPACE is an id or owner/name. create makes the owner if missing, the workspace and build 1;
build makes the next build with new agents and tokens (the older agents become outdated); delete
soft-deletes. Agents come from --spec (JSON, see src/provision/spec.ts) plus one default agent per
--agent; with neither, one agent named "main". With --url, or while a server runs on the PGlite
data folder, the command goes through the server's control API; otherwise to the database.

flags:
  --owner USER         owner's username (create)
  --name NAME          workspace name (create)
  --agent NAME         add an agent with default settings (repeatable)
  --spec FILE          workspace spec, JSON
  --json               print {"workspace_id","build_id","build_number","agents":[{"id","name","token"}]}
${controlOptionsHelp}
${databaseOptionsHelp}
`;

/**
 * `agentgate workspace create|build|delete`: provisioning through a running server's control API,
 * or straight to the database when there is none to go through.
 */
export async function runWorkspace(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "help" || sub === "--help" || sub === "-h") {
    process.stdout.write(USAGE);
    return sub === undefined ? 1 : 0;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      ...databaseOptions,
      ...controlOptions,
      owner: { type: "string" },
      name: { type: "string" },
      agent: { type: "string", multiple: true },
      spec: { type: "string" },
      json: { type: "boolean" },
    },
  });
  try {
    switch (sub) {
      case "create": {
        if (!values.owner || !values.name) throw new ProvisionError("workspace create needs --owner and --name");
        if (positionals.length > 0) throw new ProvisionError(`workspace create: unexpected argument "${positionals[0]}"`);
        const spec = await loadSpec(values.spec, values.agent);
        const result = await (await provisioner(values)).create({ owner: values.owner, name: values.name, spec });
        printResult(result, values.json === true, `created workspace ${values.owner}/${values.name}`);
        return 0;
      }
      case "build": {
        const ref = single(positionals, "build");
        const spec = await loadSpec(values.spec, values.agent);
        const result = await (await provisioner(values)).build({ workspace: ref, spec });
        printResult(result, values.json === true, `built workspace ${ref}`);
        return 0;
      }
      case "delete": {
        const ref = single(positionals, "delete");
        const workspaceId = await (await provisioner(values)).delete({ workspace: ref });
        if (values.json) process.stdout.write(`${JSON.stringify({ workspace_id: workspaceId, deleted: true })}\n`);
        else process.stdout.write(`deleted workspace ${ref} (${workspaceId})\n`);
        return 0;
      }
      default:
        process.stderr.write(`agentgate workspace: unknown subcommand "${sub}"\n${USAGE}`);
        return 1;
    }
  } catch (err) {
    if (err instanceof ProvisionError || err instanceof SpecError || err instanceof ControlTargetError) {
      process.stderr.write(`agentgate workspace ${sub}: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ConnectError) {
      // The server's message is provisioning's own, so the line reads the same either way.
      process.stderr.write(`agentgate workspace ${sub}: ${err.rawMessage}\n`);
      return 1;
    }
    throw err;
  }
}

/** The agents of the build: the spec file's, then one default agent per --agent, else a single "main". */
async function loadSpec(file: string | undefined, agentNames: string[] | undefined): Promise<WorkspaceSpec> {
  let spec: WorkspaceSpec = { agents: [] };
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      throw new SpecError(`--spec ${file}: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new SpecError(`--spec ${file}: not JSON: ${(err as Error).message}`);
    }
    spec = parseWorkspaceSpec(json);
  }
  const agents = [...spec.agents, ...(agentNames ?? []).map(defaultAgent)];
  if (agents.length === 0) agents.push(defaultAgent("main"));
  checkUniqueAgentNames(agents);
  return { agents };
}

/** Where provisioning happens: a server's control API or the database itself. */
interface Provisioner {
  create(p: { owner: string; name: string; spec: WorkspaceSpec }): Promise<ProvisionResult>;
  build(p: { workspace: string; spec: WorkspaceSpec }): Promise<ProvisionResult>;
  /** Resolves to the deleted workspace's id. */
  delete(p: { workspace: string }): Promise<string>;
}

async function provisioner(values: ControlFlagValues): Promise<Provisioner> {
  const client = await controlClientFor(values);
  return client === undefined ? databaseProvisioner(values) : controlProvisioner(client);
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
    build: async (p) => result(await client.buildWorkspace({ workspace: p.workspace, spec: specToMessage(p.spec) })),
    delete: async (p) => (await client.deleteWorkspace({ workspace: p.workspace })).workspaceId,
  };
}

function databaseProvisioner(values: DatabaseFlagValues): Provisioner {
  return {
    create: (p) => withDatabase(values, (db) => createWorkspace(db, p)),
    build: (p) => withDatabase(values, (db) => buildWorkspace(db, p)),
    delete: async (p) => (await withDatabase(values, (db) => deleteWorkspace(db, p))).id,
  };
}

async function withDatabase<T>(values: DatabaseFlagValues, fn: (db: Awaited<ReturnType<typeof openMigratedDatabase>>["db"]) => Promise<T>): Promise<T> {
  const { db } = await openMigratedDatabase(values);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

function single(positionals: string[], sub: string): string {
  if (positionals.length !== 1) throw new ProvisionError(`workspace ${sub} needs exactly one WORKSPACE (an id or owner/name)`);
  return positionals[0]!;
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
