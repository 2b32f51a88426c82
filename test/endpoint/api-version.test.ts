/**
 * The API version agents are offered: the newest minor whose RPCs all answer, since a Coder agent
 * drops its connection on any failing RPC; and an unsupported version refused as coderd does.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { HttpError } from "../../src/http/http-error.js";
import { CURRENT_API_MINOR } from "../../src/protocol/agent-rpc.js";
import { connectErrorOf } from "../../src/rpc/index.js";
import { AGENT_RPCS_BY_MINOR, negotiateApiVersion, OPTIONAL_AGENT_RPCS, servedApiMinor } from "../../src/server/api-version.js";
import { DrpcSessionClient } from "../../src/drpc/index.js";
import { provisionAgent, withTunnel } from "../agentapi/support.js";
import { rawGet } from "../support/http.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";

const STREAMING = new Set(["/coder.tailnet.v2.Tailnet/Coordinate", "/coder.tailnet.v2.Tailnet/StreamDERPMaps"]);

describe("the offered API minor", () => {
  const all = AGENT_RPCS_BY_MINOR.flat();
  const without = (missing: string) => (path: string) => path !== missing && all.includes(path);

  test("is the newest known when every RPC is implemented", () => {
    assert.equal(servedApiMinor(() => true), CURRENT_API_MINOR);
  });

  test("stops below the first minor with a missing RPC", () => {
    assert.equal(servedApiMinor(without("/coder.agent.v2.Agent/ScriptCompleted")), 2);
    assert.equal(servedApiMinor(without("/coder.agent.v2.Agent/UpdateAppStatus")), 7);
  });

  test("does not drop for an RPC Coder's agent takes Unimplemented from as 'absent'", () => {
    assert.equal(servedApiMinor(without("/coder.agent.v2.Agent/PushContextState")), CURRENT_API_MINOR);
  });

  test("throws when not even 2.0's RPCs are there", () => {
    assert.throws(() => servedApiMinor(without("/coder.tailnet.v2.Tailnet/Coordinate")), /API 2\.0/);
  });

  test("a newer minor than offered is refused with coderd's 400 and version validation", () => {
    assert.throws(
      () => negotiateApiVersion("2.3", 2),
      (err: unknown) => {
        assert.ok(err instanceof HttpError);
        assert.equal(err.status, 400);
        assert.deepEqual(err.body, {
          message: "Unknown or unsupported API version",
          validations: [{ field: "version", detail: "server is at version 2.2, behind requested minor version 2.3" }],
        });
        return true;
      },
    );
    assert.equal(negotiateApiVersion("2.2", 2), "2.2");
  });
});

describe("the real server's offered version", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test("is 2.13, and one minor more gets coderd's exact answer", async () => {
    assert.equal(srv.server.apiVersion, `2.${CURRENT_API_MINOR}`);
    const a = await provisionAgent(t.db);
    const res = await rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc?version=2.${CURRENT_API_MINOR + 1}`, { "Coder-Session-Token": a.token }, { upgrade: true });
    assert.equal(res.status, 400);
    assert.deepEqual(JSON.parse(res.body), {
      message: "Unknown or unsupported API version",
      validations: [{ field: "version", detail: `server is at version 2.${CURRENT_API_MINOR}, behind requested minor version 2.${CURRENT_API_MINOR + 1}` }],
    });
  });

  test("every unary RPC of the offered minors answers over DRPC with something other than Unimplemented", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const drpc = new DrpcSessionClient(tun.session);
      for (const path of AGENT_RPCS_BY_MINOR.slice(0, CURRENT_API_MINOR + 1).flat()) {
        if (STREAMING.has(path) || OPTIONAL_AGENT_RPCS.has(path)) continue;
        const code = await drpc.unary(path, new Uint8Array()).then(
          () => undefined,
          (err: unknown) => connectErrorOf(err).code,
        );
        assert.notEqual(code, Code.Unimplemented, path);
      }
    });
  });
});
