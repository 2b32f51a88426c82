import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { AgentServer } from "../../src/server/agent-server.js";
import { startAgentgate } from "../../src/server/start.js";
import { testServerConfig, useTestDatabase } from "../support/agent-server.js";
import { makeWorkspace } from "../support/fixtures.js";
import { rawGet } from "../support/http.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";

type LogLine = Record<string, unknown>;

/** A pino destination that keeps every JSON line and lets a test await the one it expects. */
function logSink() {
  const lines: LogLine[] = [];
  let waiters: (() => void)[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line) as LogLine);
      const w = waiters;
      waiters = [];
      for (const f of w) f();
      cb();
    },
  });
  const line = async (match: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching log line within ${timeoutMs} ms; last: ${JSON.stringify(lines.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  return { stream, line };
}

describe("the server's log lines about agents", () => {
  const t = useTestDatabase();
  const sink = logSink();
  let server: AgentServer;
  let url: string;
  before(async () => {
    server = await startAgentgate(testServerConfig(), t.db, pino({ level: "info" }, sink.stream));
    url = `http://127.0.0.1:${server.address.port}`;
  });
  after(() => server.shutdown());

  test("connect and disconnect lines name the owner, workspace and agent, the remote address, the API version and the reason", async () => {
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const agentId = ws.agents[0]!.id;
    const tunnel = await dialRawTunnel(url, ws.agents[0]!.authToken, { version: "2.13" });
    const connected = await sink.line((l) => l.msg === "agent connected" && l.agent_id === agentId);
    assert.deepEqual(
      [connected.level, connected.owner, connected.workspace, connected.agent, connected.workspace_id, connected.remote_address, connected.api_version, connected.build_number],
      [30, ws.owner.username, ws.workspace.name, "main", ws.workspace.id, "127.0.0.1", "2.13", 1],
    );
    tunnel.ws.close(1000);
    const disconnected = await sink.line((l) => l.msg === "agent disconnected" && l.agent_id === agentId);
    assert.deepEqual([disconnected.level, disconnected.owner, disconnected.workspace, disconnected.agent, disconnected.reason], [30, ws.owner.username, ws.workspace.name, "main", "agent_closed"]);
    assert.equal(typeof disconnected.connected_ms, "number");
  });

  test("a refused dial is logged at info with its status and message, never a provision job", async () => {
    const res = await rawGet(`${url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": randomUUID() });
    assert.equal(res.status, 401);
    assert.doesNotMatch(JSON.parse(res.body).detail, /provision/);
    const refused = await sink.line((l) => l.msg === "agent dial refused" && l.status === 401);
    assert.deepEqual([refused.level, refused.message, refused.remote_address], [30, "Workspace agent not authorized.", "127.0.0.1"]);
  });
});
