/**
 * Client tokens through the control API of a real server: issued for an agent or a workspace,
 * stored hashed, usable until they expire, are revoked, or their workspace or agent goes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { authenticateClient, hashClientToken } from "../../src/tailnet/client-token.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { connectErrorOf } from "../support/connect-error.js";

const ADMIN_TOKEN = "test-admin-token";

describe("client tokens", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let control: ControlClient;
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
  });
  after(() => srv.close());

  async function workspace(agents = ["main", "gpu"]) {
    const owner = `u-${randomUUID().slice(0, 8)}`;
    const res = await control.createWorkspace({ owner, name: "dev", spec: { agents: agents.map((name) => ({ name })) } });
    return { ...res, owner };
  }

  test("a token for an agent reaches that agent and no other, and only its hash is stored", async () => {
    const ws = await workspace();
    const [main, gpu] = ws.agents;
    const { token, expiresAt } = await control.issueClientToken({ target: { case: "agentId", value: main!.id } });
    const grant = await authenticateClient(t.db, token, main!.id);
    assert.equal(grant?.agentId, main!.id);
    assert.equal(grant?.workspaceId, ws.workspaceId);
    assert.equal(await authenticateClient(t.db, token, gpu!.id), undefined);
    assert.ok(Math.abs(Number(expiresAt!.seconds) * 1000 - (Date.now() + 3600_000)) < 60_000, "an hour by default");
    const { rows } = await t.db.query<{ hash: Buffer }>("SELECT token_hash AS hash FROM client_tokens WHERE id = $1", [grant!.tokenId]);
    assert.deepEqual(rows[0]!.hash, hashClientToken(token));
    const stored = await t.db.query("SELECT * FROM client_tokens WHERE id = $1", [grant!.tokenId]);
    assert.ok(!JSON.stringify(stored.rows).includes(token), "the token itself is in no column");
  });

  test("a token for a workspace reaches each of its agents, by id or owner/name, and not another workspace's", async () => {
    const ws = await workspace();
    const other = await workspace(["main"]);
    const { token } = await control.issueClientToken({ target: { case: "workspace", value: `${ws.owner}/dev` } });
    for (const a of ws.agents) assert.equal((await authenticateClient(t.db, token, a.id))?.workspaceId, ws.workspaceId);
    assert.equal(await authenticateClient(t.db, token, other.agents[0]!.id), undefined);
    const grant = await authenticateClient(t.db, token);
    assert.equal(grant?.agentId, null);
  });

  test("a token is refused once it expires", async () => {
    const ws = await workspace(["main"]);
    const { token } = await control.issueClientToken({ target: { case: "agentId", value: ws.agents[0]!.id }, ttl: { seconds: 1n } });
    assert.ok(await authenticateClient(t.db, token));
    await eventually(async () => ((await authenticateClient(t.db, token)) === undefined ? true : undefined), 5_000, "expiry");
  });

  test("a revoked token is refused at once; revoking again is fine, an unknown token is NotFound", async () => {
    const ws = await workspace(["main"]);
    const { token } = await control.issueClientToken({ target: { case: "workspace", value: ws.workspaceId } });
    await control.revokeClientToken({ token });
    assert.equal(await authenticateClient(t.db, token), undefined);
    await control.revokeClientToken({ token });
    assert.equal((await connectErrorOf(control.revokeClientToken({ token: "never-issued" }))).code, Code.NotFound);
  });

  test("a token is refused once its workspace is deleted", async () => {
    const ws = await workspace(["main"]);
    const byAgent = await control.issueClientToken({ target: { case: "agentId", value: ws.agents[0]!.id } });
    const byWorkspace = await control.issueClientToken({ target: { case: "workspace", value: ws.workspaceId } });
    await control.deleteWorkspace({ workspace: ws.workspaceId });
    assert.equal(await authenticateClient(t.db, byAgent.token), undefined);
    assert.equal(await authenticateClient(t.db, byWorkspace.token), undefined);
    assert.equal((await connectErrorOf(control.issueClientToken({ target: { case: "workspace", value: ws.workspaceId } }))).code, Code.NotFound);
  });

  test("an agent token's bound agent deleted (a removed sub-agent) refuses the token", async () => {
    const ws = await workspace(["main"]);
    const { token } = await control.issueClientToken({ target: { case: "agentId", value: ws.agents[0]!.id } });
    await t.db.query("UPDATE workspace_agents SET deleted = true WHERE id = $1", [ws.agents[0]!.id]);
    assert.equal(await authenticateClient(t.db, token), undefined);
  });

  test("bad requests: no target, unknown agent, a ttl of 0 or over 30 days, and no admin token", async () => {
    const ws = await workspace(["main"]);
    const agent = { case: "agentId" as const, value: ws.agents[0]!.id };
    assert.equal((await connectErrorOf(control.issueClientToken({}))).code, Code.InvalidArgument);
    assert.equal((await connectErrorOf(control.issueClientToken({ target: { case: "agentId", value: randomUUID() } }))).code, Code.NotFound);
    assert.equal((await connectErrorOf(control.issueClientToken({ target: { case: "agentId", value: "nope" } }))).code, Code.InvalidArgument);
    assert.equal((await connectErrorOf(control.issueClientToken({ target: agent, ttl: { seconds: 0n } }))).code, Code.InvalidArgument);
    assert.equal((await connectErrorOf(control.issueClientToken({ target: agent, ttl: { seconds: 31n * 86_400n } }))).code, Code.InvalidArgument);
    const stranger = createControlClient({ url: srv.url, adminToken: "wrong" });
    assert.equal((await connectErrorOf(stranger.issueClientToken({ target: agent }))).code, Code.Unauthenticated);
  });
});
