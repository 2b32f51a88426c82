import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeWorkspace } from "../support/fixtures.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { interopKit, runTool, SKIP_INTEROP, type InteropKit } from "../support/interop-kit.js";

const AGENT = "coder.agent.v2.Agent";
const TAILNET = "coder.tailnet.v2.Tailnet";

/** A DERP map for StreamDERPMaps to send, as an operator's --derp-map file would give it. */
const DERP_MAP = { regions: { "999": { regionId: "999", regionCode: "test", regionName: "Test", nodes: [{ name: "999a", regionId: "999", hostName: "derp.test" }] } } };

describe("interop: the Go agent probe (hashicorp/yamux + grpc-go) through the tunnel", { skip: SKIP_INTEROP }, () => {
  const t = useTestDatabase();
  let kit: InteropKit;
  let srv: TestServer;
  let token: string;
  let dir: string;
  const probe = (args: string[], timeoutMs?: number) =>
    runTool(kit.agentprobe, ["-url", srv.url, "-token", token, "-desc", kit.descriptorSet, ...args], { timeoutMs });

  before(async () => {
    kit = await interopKit();
    dir = await mkdtemp(join(tmpdir(), "agentgate-derp-"));
    const derpMapFile = join(dir, "derp.json");
    await writeFile(derpMapFile, JSON.stringify(DERP_MAP));
    srv = await startTestServer(t.db, { derpMapFile });
    token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
  });
  after(async () => {
    await srv?.close();
    await kit?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("a unary call", async () => {
    const res = await probe(["call", `${AGENT}/GetAnnouncementBanners`, "{}"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), "{}");
  });

  test("a server stream sends the configured DERP map first", async () => {
    const res = await probe(["-timeout", "1s", "stream", `${TAILNET}/StreamDERPMaps`, "{}"]);
    // The stream stays open for updates: the probe's own deadline ends it.
    assert.match(res.stderr, /DeadlineExceeded/);
    const first = JSON.parse(res.stdout.split("\n")[0]!) as { regions: Record<string, { regionCode: string }> };
    assert.equal(first.regions["999"]!.regionCode, "test");
  });

  test("an RPC not built yet comes back as Unimplemented", async () => {
    const res = await probe(["call", `${AGENT}/PushContextState`, "{}"]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /code=Unimplemented/);
  });

  test("a method the server does not serve is a trailers-only Unimplemented over gRPC, not Internal", async () => {
    const res = await runTool(kit.agentprobe, ["-url", srv.url, "-token", token, "-desc", kit.echoDescriptorSet, "call", "interop.echo.v1.EchoService/Echo", "{}"]);
    assert.equal(res.code, 2, res.stdout + res.stderr);
    assert.match(res.stderr, /code=Unimplemented/);
    assert.doesNotMatch(res.stderr, /without sending trailers/);
  });

  test("2,000 calls at concurrency 32 over one tunnel, no errors", async () => {
    const res = await probe(["soak", "-n", "2000", "-c", "32", `${AGENT}/GetServiceBanner`, "{}"], 120_000);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout + res.stderr, /calls=2000 ok=2000 errors=0/);
  });

  test("every byte in its own WebSocket message (-ws-chunk 1)", async () => {
    const res = await probe(["-ws-chunk", "1", "soak", "-n", "100", "-c", "4", `${AGENT}/GetServiceBanner`, "{}"], 120_000);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout + res.stderr, /ok=100 errors=0/);
  });

  test("50 tunnels held with yamux keepalive stay healthy", async () => {
    const res = await probe(["-keepalive", "250ms", "tunnels", "-n", "50", "-t", "2s", `${AGENT}/GetServiceBanner`, "{}"], 120_000);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout + res.stderr, /opened=50 healthy_after_hold=50/);
  });

  test("a bad token is refused with 401 before any upgrade", async () => {
    const res = await runTool(kit.agentprobe, ["-url", srv.url, "-token", "00000000-0000-4000-8000-000000000000", "-desc", kit.descriptorSet, "call", `${AGENT}/GetServiceBanner`, "{}"]);
    assert.equal(res.code, 1);
    assert.match(res.stdout + res.stderr, /401/);
  });

  test("-direct: gRPC h2c on the plain port with the token as metadata", async () => {
    const res = await probe(["-direct", srv.hostPort, "soak", "-n", "200", "-c", "8", `${AGENT}/GetServiceBanner`, "{}"]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout + res.stderr, /ok=200 errors=0/);
  });
});

describe("interop: buf curl and Python grpcio on the plain port", { skip: SKIP_INTEROP }, () => {
  const t = useTestDatabase();
  let kit: InteropKit;
  let srv: TestServer;
  let token: string;
  before(async () => {
    kit = await interopKit();
    srv = await startTestServer(t.db);
    token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
  });
  after(async () => {
    await srv?.close();
    await kit?.cleanup();
  });

  for (const [protocol, extra] of [
    ["connect", []],
    ["grpc", ["--http2-prior-knowledge"]],
    ["grpcweb", []],
  ] as const) {
    test(`buf curl --protocol ${protocol}`, async () => {
      const res = await runTool(kit.buf, ["curl", "--protocol", protocol, ...extra, "--schema", kit.descriptorSet, "-H", `Coder-Session-Token: ${token}`, "-d", "{}", `${srv.url}/${AGENT}/GetAnnouncementBanners`]);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(JSON.parse(res.stdout), {});
    });
  }

  test("buf curl without a token gets unauthenticated", async () => {
    const res = await runTool(kit.buf, ["curl", "--protocol", "connect", "--schema", kit.descriptorSet, "-d", "{}", `${srv.url}/${AGENT}/GetServiceBanner`]);
    // buf exits with the Connect code × 8: unauthenticated (16) → 128.
    assert.equal(res.code, 128, res.stdout + res.stderr);
    assert.match(res.stdout + res.stderr, /"code": "unauthenticated"/);
  });

  test("Python grpcio: a unary call and a server stream", async () => {
    const unary = await runTool("/usr/bin/python3", [join(kit.src, "pyprobe.py"), "--token", token, srv.hostPort, kit.descriptorSet, `${AGENT}/GetServiceBanner`, "{}"]);
    assert.equal(unary.code, 0, unary.stderr);
    assert.deepEqual(JSON.parse(unary.stdout), {});
  });
});
