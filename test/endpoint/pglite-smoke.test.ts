import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectAgent } from "../../src/client/index.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { makeWorkspace } from "../support/fixtures.js";
import { eventually, startTestServer, useTestDatabase } from "../support/agent-server.js";

describe("the agent endpoint on embedded PGlite", () => {
  const t = useTestDatabase("pglite");

  test("an agent connects, calls, and disconnects with its times recorded", async () => {
    const srv = await startTestServer(t.db, { agentUpdateIntervalMs: 100, agentInactiveTimeoutMs: 400 });
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const agentId = ws.agents[0]!.id;
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    try {
      assert.equal((await conn.agent.getServiceBanner({})).enabled, false);
      const connected = await eventually(async () => (await getAgentById(t.db, agentId))?.lastConnectedAt ?? undefined);
      assert.ok(connected instanceof Date);
    } finally {
      await conn.close();
    }
    await eventually(async () => ((await getAgentById(t.db, agentId))?.disconnectedAt ? true : undefined), 1_000, "disconnected_at");
    await srv.close();
  });
});
