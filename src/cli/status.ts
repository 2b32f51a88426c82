import { parseArgs } from "node:util";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { AgentStatus, LifecycleState } from "../../gen/agentgate/control/v1/control_pb.js";
import { listAgentOverviews } from "../db/queries/agents.js";
import { parseDuration } from "../duration.js";
import { agentStatus } from "../status/agent-status.js";
import { controlClientFor, controlOptions, controlOptionsHelp, ControlTargetError, type ControlClient, type ControlFlagValues } from "./control-client.js";
import { databaseOptions, databaseOptionsHelp, openMigratedDatabase } from "./database-options.js";

/** AgentInactiveDisconnectTimeout's default (agent-api.md §5), as `serve` uses it. */
const DEFAULT_INACTIVE = "30s";

const USAGE = `usage: agentgate status [--json] [flags]

Lists the agents of every workspace's latest build with their computed status. With --url, or
while a server runs on the PGlite data folder, asks the server's control API (which computes
statuses with its own inactivity timeout); otherwise reads the database.

flags:
  --json                          one JSON array instead of a table
  --agent-inactive-timeout DUR    reading the database: an agent silent this long is disconnected (default ${DEFAULT_INACTIVE}, as serve)
${controlOptionsHelp}
${databaseOptionsHelp}
`;

/** One agent in `agentgate status --json`. */
export interface StatusLine {
  workspace_id: string;
  workspace: string;
  agent_id: string;
  agent: string;
  build_number: number;
  status: string;
  lifecycle_state: string;
  last_connected_at: string | null;
}

/** `agentgate status`: agents with workspace, build number, status, lifecycle and last connection. */
export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...databaseOptions, ...controlOptions, json: { type: "boolean" }, "agent-inactive-timeout": { type: "string", default: DEFAULT_INACTIVE }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const inactiveMs = parseDuration(values["agent-inactive-timeout"]!);
  let lines: StatusLine[];
  try {
    const client = await controlClientFor(values);
    lines = client === undefined ? await readDatabase(values, inactiveMs) : await askServer(client);
  } catch (err) {
    if (!(err instanceof ConnectError || err instanceof ControlTargetError)) throw err;
    process.stderr.write(`agentgate status: ${err instanceof ConnectError ? err.rawMessage : err.message}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(lines)}\n`);
    return 0;
  }
  if (lines.length === 0) {
    process.stdout.write("no agents\n");
    return 0;
  }
  process.stdout.write(table([
    ["WORKSPACE", "AGENT", "BUILD", "STATUS", "LIFECYCLE", "LAST CONNECTED"],
    ...lines.map((l) => [l.workspace, l.agent, String(l.build_number), l.status, l.lifecycle_state, l.last_connected_at ?? "never"]),
  ]));
  return 0;
}

async function readDatabase(values: ControlFlagValues, inactiveMs: number): Promise<StatusLine[]> {
  const { db } = await openMigratedDatabase(values);
  let overviews;
  try {
    overviews = await listAgentOverviews(db);
  } finally {
    await db.close();
  }
  const now = new Date();
  return overviews.map((o) => ({
    workspace_id: o.workspaceId,
    workspace: `${o.ownerUsername}/${o.workspaceName}`,
    agent_id: o.agent.id,
    agent: o.agent.name,
    build_number: o.buildNumber,
    status: agentStatus(o.agent, now, inactiveMs).status,
    lifecycle_state: o.agent.lifecycleState,
    last_connected_at: o.agent.lastConnectedAt?.toISOString() ?? null,
  }));
}

/** The same lines from ListAgents: enum names in lower case are the database's values. */
async function askServer(client: ControlClient): Promise<StatusLine[]> {
  const { agents } = await client.listAgents({});
  return agents.map((a) => ({
    workspace_id: a.workspaceId,
    workspace: `${a.owner}/${a.workspaceName}`,
    agent_id: a.agentId,
    agent: a.agentName,
    build_number: a.buildNumber,
    status: (AgentStatus[a.status] ?? "unknown").toLowerCase(),
    lifecycle_state: (LifecycleState[a.lifecycleState] ?? "unknown").toLowerCase(),
    last_connected_at: a.lastConnectedAt ? timestampDate(a.lastConnectedAt).toISOString() : null,
  }));
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}
