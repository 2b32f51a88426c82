import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { buildWorkspace, createWorkspace } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { spawnCli } from "../support/cli.js";
import { closedPort } from "../support/closed-port.js";

const SPEC = parseWorkspaceSpec({ agents: [{ name: "main", metadata: [{ key: "one", script: "echo 1", interval_seconds: 1 }] }] });

describe("agentgate agent as a process", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    // A short update interval: the tracker sees a newer build at the next tick.
    srv = await startTestServer(t.db, { agentUpdateIntervalMs: 200, agentInactiveTimeoutMs: 2_000 });
  });
  after(async () => {
    await srv.close();
  });

  test("an agent whose build is superseded is closed with 1001, refused on redial, and exits 3 with the server's reason", async () => {
    const created = await createWorkspace(t.db, { owner: "ada", name: "dev", spec: SPEC });
    const agent = spawnCli(["agent", "--url", srv.url, "--token", created.agents[0]!.token]);
    await agent.waitForLine((l) => l.msg === "lifecycle reported" && l.state === "ready");
    await buildWorkspace(t.db, { workspace: created.workspace_id });
    assert.equal(await agent.exited, 3);
    assert.equal(agent.stderr(), "agentgate agent: agent endpoint refused the connection: 403 Agent trying to connect from non-latest build. (build is outdated)\n");
    const dropped = agent.lines.find((l) => l.msg === "disconnected; dialling again");
    assert.match(String(dropped?.err), /\(websocket 1001 build is outdated\)$/);
    assert.deepEqual(agent.lines.filter((l) => l.msg === "the server refused this agent").map((l) => l.level), ["error"]);
    // pino's levels as words, so log shippers need no number table.
    assert.ok(agent.lines.every((l) => typeof l.level === "string"));
  });

  test("an unknown token exits 3 at once", async () => {
    const agent = spawnCli(["agent", "--url", srv.url, "--token", randomUUID()]);
    assert.equal(await agent.exited, 3);
    assert.match(agent.stderr(), /^agentgate agent: agent endpoint refused the connection: 401 [^\n]+\n$/);
  });

  test("a server that cannot be reached is reported at the first failed dial and every fifth, with attempts and backoff", async () => {
    const agent = spawnCli(["agent", "--url", `http://127.0.0.1:${await closedPort()}`, "--token", randomUUID()]);
    await agent.waitForLine((l) => l.attempts === 5);
    agent.child.kill("SIGTERM");
    assert.equal(await agent.exited, 0);
    const reports = agent.lines.filter((l) => l.level === "warn");
    assert.deepEqual(reports.map((l) => l.attempts), [1, 5]);
    assert.match(String(reports[1]!.msg), /^cannot reach the server \(5 failed dials\); next dial in \d+ ms$/);
    assert.equal(reports[1]!.retry_in_ms, Number(/in (\d+) ms/.exec(String(reports[1]!.msg))![1]));
    assert.match(String(reports[0]!.err), /ECONNREFUSED/);
  });
});
