import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { softDeleteSubAgent } from "../../src/db/queries/sub-agents.js";
import { softDeleteWorkspace } from "../../src/db/queries/workspaces.js";
import { insertAgent } from "../../src/db/queries/agents.js";
import { randomUUID } from "node:crypto";
import { makeBuild, makeWorkspace, type WorkspaceFixture } from "../support/fixtures.js";
import { rawGet, rawUpgradeHead } from "../support/http.js";
import { primaryEngine, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { createTestDatabase } from "../support/database.js";

const PATH = "/api/v2/workspaceagents/me/rpc";

describe("agent endpoint admission (before any upgrade)", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let ws: WorkspaceFixture;
  let token: string;
  before(async () => {
    srv = await startTestServer(t.db);
    ws = await makeWorkspace(t.db, { agents: ["main"] });
    token = ws.agents[0]!.authToken;
  });
  after(() => srv.close());

  const dial = (query = "", headers: Record<string, string> = {}, opts: { upgrade?: boolean } = {}) => rawGet(`${srv.url}${PATH}${query}`, headers, opts);

  test("no token: 401 asking for the cookie", async () => {
    const res = await dial();
    assert.equal(res.status, 401);
    assert.equal(res.upgraded, false);
    assert.deepEqual(JSON.parse(res.body), { message: 'Cookie "coder_session_token" must be provided.' });
  });

  test("a token that is not a UUID: 401 token invalid, with its length in the detail", async () => {
    const res = await dial("", { "Coder-Session-Token": "not-a-uuid" });
    assert.equal(res.status, 401);
    const body = JSON.parse(res.body);
    assert.equal(body.message, "Workspace agent token invalid.");
    assert.match(body.detail, /valid UUIDv4.*len 10/);
  });

  test("an unknown token: 401 not authorized", async () => {
    const res = await dial("", { "Coder-Session-Token": randomUUID() });
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body).message, "Workspace agent not authorized.");
  });

  test("an unauthenticated request with a bad version still gets 401: auth comes first", async () => {
    const res = await dial("?version=banana");
    assert.equal(res.status, 401);
  });

  for (const [name, headers, query] of [
    ["header Coder-Session-Token", (tok: string) => ({ "Coder-Session-Token": tok }), ""],
    ["cookie coder_session_token", (tok: string) => ({ cookie: `other=1; coder_session_token=${tok}` }), ""],
    ["query coder_session_token", () => ({}), "tok"],
    ["Authorization: Bearer", (tok: string) => ({ authorization: `Bearer ${tok}` }), ""],
  ] as const) {
    test(`the token is accepted from the ${name}`, async () => {
      const q = query === "tok" ? `?coder_session_token=${token}&version=2.0` : "?version=2.0";
      const res = await dial(q, headers(token));
      assert.equal(res.status, 101);
      assert.equal(res.upgraded, true);
    });
  }

  for (const [version, detail] of [
    ["3.0", /behind requested major version 3\.0/],
    ["2.14", /behind requested minor version 2\.14/],
    ["1.9", /version 1\.9 is no longer supported/],
    ["2", /invalid version string/],
    ["x.1", /invalid major version/],
    ["2.y", /invalid minor version/],
  ] as const) {
    test(`version ${version}: 400 with a version validation`, async () => {
      const res = await dial(`?version=${version}`, { "Coder-Session-Token": token });
      assert.equal(res.status, 400);
      const body = JSON.parse(res.body);
      assert.equal(body.message, "Unknown or unsupported API version");
      assert.equal(body.validations[0].field, "version");
      assert.match(body.validations[0].detail, detail);
    });
  }

  test("no version and an empty version are both accepted as 2.0", async () => {
    assert.equal((await dial("", { "Coder-Session-Token": token })).status, 101);
    assert.equal((await dial("?version=", { "Coder-Session-Token": token })).status, 101);
  });

  test("an agent of a non-latest build: 403 build is outdated", async () => {
    const old = await makeWorkspace(t.db, { agents: ["main"] });
    await makeBuild(t.db, old.workspace, old.owner.id, { agents: ["main"] });
    const res = await dial("?version=2.13", { "Coder-Session-Token": old.agents[0]!.authToken });
    assert.equal(res.status, 403);
    assert.deepEqual(JSON.parse(res.body), { message: "Agent trying to connect from non-latest build.", detail: "build is outdated" });
  });

  test("an agent of a soft-deleted workspace: 401", async () => {
    const gone = await makeWorkspace(t.db, { agents: ["main"] });
    await softDeleteWorkspace(t.db, gone.workspace.id, new Date());
    const res = await dial("", { "Coder-Session-Token": gone.agents[0]!.authToken });
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body).message, "Workspace agent not authorized.");
  });

  test("a soft-deleted sub-agent: 401", async () => {
    const parent = ws.agents[0]!;
    const sub = await insertAgent(t.db, {
      id: randomUUID(), resourceId: parent.resourceId, name: `sub-${randomUUID().slice(0, 6)}`, authToken: randomUUID(),
      architecture: "amd64", operatingSystem: "linux", parentId: parent.id, now: new Date(),
    });
    assert.equal((await dial("", { "Coder-Session-Token": sub.authToken })).status, 101);
    await softDeleteSubAgent(t.db, { id: sub.id, parentId: parent.id, now: new Date() });
    const res = await dial("", { "Coder-Session-Token": sub.authToken });
    assert.equal(res.status, 401);
  });

  test("a GET without upgrade headers: 426 after auth, 401 without a token", async () => {
    const ok = await dial("", { "Coder-Session-Token": token }, { upgrade: false });
    assert.equal(ok.status, 426);
    const anon = await dial("", {}, { upgrade: false });
    assert.equal(anon.status, 401);
  });

  test("the 101 selects no subprotocol even when the client offers some", async () => {
    const res = await rawUpgradeHead(`${srv.url}${PATH}?version=2.13`, { "Coder-Session-Token": token, "Sec-WebSocket-Protocol": "chat, superchat" });
    assert.match(res.statusLine, /^HTTP\/1\.1 101 /);
    assert.equal(res.headers.get("upgrade")?.toLowerCase(), "websocket");
    assert.equal(res.headers.has("sec-websocket-protocol"), false, `answered Sec-WebSocket-Protocol: ${res.headers.get("sec-websocket-protocol")}`);
  });

  test("an Origin that does not match Host: 403", async () => {
    const res = await dial("", { "Coder-Session-Token": token, origin: "http://evil.example" });
    assert.equal(res.status, 403);
    const same = await dial("", { "Coder-Session-Token": token, origin: srv.url });
    assert.equal(same.status, 101);
  });
});

describe("agent endpoint with a failing database", () => {
  test("a database that can't be reached during auth: 503 with a generic message, no upgrade", async () => {
    // A database of its own, closed under the running server (PGlite allows one handle per folder).
    const testDb = await createTestDatabase(primaryEngine());
    const db = await testDb.open();
    const srv = await startTestServer(db);
    try {
      const ws = await makeWorkspace(db, { agents: ["main"] });
      await db.close();
      const res = await rawGet(`${srv.url}${PATH}`, { "Coder-Session-Token": ws.agents[0]!.authToken });
      assert.equal(res.status, 503);
      assert.equal(res.upgraded, false);
      assert.deepEqual(JSON.parse(res.body), { message: "Database unavailable, try again later.", detail: "the workspace agent's token can't be checked now" });
    } finally {
      await srv.close();
      await testDb.destroy();
    }
  });
});
