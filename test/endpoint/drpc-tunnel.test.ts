/**
 * DRPC inside the real agent tunnel, as stock Coder agents speak it: the agent-like DRPC client
 * (one fresh yamux stream per RPC) over the WebSocket and yamux of a real server, beside Connect,
 * and gRPC from the Go probe (grpc-go) relayed into the same tunnel.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  Agent,
  Connection_Action,
  Lifecycle_State,
  Timing_Stage,
  Timing_Status,
  UpdateAppStatusRequest_AppStatusState,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidToBytes } from "../../src/agentapi/uuid-bytes.js";
import { DrpcClientConnection } from "../../src/drpc/index.js";
import { connectErrorOf, createDrpcClient } from "../../src/rpc/index.js";
import type { Session } from "../../src/yamux/index.js";
import { provisionAgent, rejectsWith, withTunnel, type ProvisionedAgent } from "../agentapi/support.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { interopKit, runTool, SKIP_INTEROP } from "../support/interop-kit.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";
import { nodeAddresses } from "../support/stock-agent-session.js";

const SPEC_AGENT = {
  apps: [{ slug: "web", url: "http://127.0.0.1:1", healthcheck: { url: "http://127.0.0.1:1/", interval_seconds: 5, threshold: 2 } }],
  scripts: [{ display_name: "Hello", script: "echo hello", run_on_start: true, timeout_seconds: 30 }],
  metadata: [{ key: "load", display_name: "Load", script: "true", interval_seconds: 5, timeout_seconds: 1 }],
  resource_monitors: { memory: { enabled: true, threshold: 80 }, volumes: [{ path: "/home", enabled: true, threshold: 90 }] },
};

/** The count of `agentgate_rpcs_total` for one label set, read from /metrics. */
async function rpcCount(srv: TestServer, service: string, method: string, code: string): Promise<number> {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`agentgate_rpcs_total{service="${service}",method="${method}",code="${code}"}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

/** The raw DRPC connection of one fresh yamux stream, as the typed client makes for each RPC. */
function drpcStream(session: Session): { stream: ReturnType<Session["open"]>; connection: DrpcClientConnection } {
  const stream = session.open();
  return { stream, connection: new DrpcClientConnection(stream, { endAfterRpc: true }) };
}

describe("DRPC in the tunnel, served by the same Agent and Tailnet implementations", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test("every Agent RPC answers over DRPC with the tunnel's identity, counted in agentgate_rpcs_total", async () => {
    const a = await provisionAgent(t.db, SPEC_AGENT);
    const before = await rpcCount(srv, "coder.agent.v2.Agent", "GetManifest", "ok");
    await withTunnel(srv.url, a.token, async (tun) => {
      const agent = createDrpcClient(Agent, tun.session);
      const manifest = await agent.getManifest({});
      assert.deepEqual([manifest.agentName, manifest.workspaceName, manifest.ownerUsername], [a.agentName, a.workspaceName, a.owner]);
      const script = manifest.scripts[0]!;
      const app = manifest.apps[0]!;
      assert.equal((await agent.getServiceBanner({})).enabled, false);
      assert.deepEqual((await agent.getAnnouncementBanners({})).announcementBanners, []);
      assert.ok((await agent.updateStats({})).reportInterval !== undefined);
      assert.equal((await agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.STARTING, changedAt: timestampNow() } })).state, Lifecycle_State.STARTING);
      await agent.batchUpdateAppHealths({ updates: [{ id: app.id, health: 2 }] });
      assert.equal((await agent.updateStartup({ startup: { version: "v2.24.0", expandedDirectory: "/home/coder", subsystems: [] } })).version, "v2.24.0");
      await agent.batchUpdateMetadata({ metadata: [{ key: "load", result: { collectedAt: timestampNow(), age: 0n, value: "0.5" } }] });
      assert.equal((await agent.batchCreateLogs({ logSourceId: script.logSourceId, logs: [{ createdAt: timestampNow(), output: "hi", level: 2 }] })).logLimitExceeded, false);
      await agent.scriptCompleted({ timing: { scriptId: script.id, start: timestampNow(), end: timestampNow(), exitCode: 0, stage: Timing_Stage.START, status: Timing_Status.OK } });
      const monitoring = await agent.getResourcesMonitoringConfiguration({});
      assert.deepEqual(monitoring.volumes.map((v) => v.path), ["/home"]);
      await agent.pushResourcesMonitoringUsage({ datapoints: [{ collectedAt: timestampNow(), memory: { used: 1n, total: 10n }, volumes: [{ volume: "/home", used: 1n, total: 10n }] }] });
      await agent.reportConnection({ connection: { id: uuidToBytes(crypto.randomUUID()), action: Connection_Action.CONNECT, appName: "ssh", timestamp: timestampNow(), ip: "127.0.0.1" } });
      const sub = await agent.createSubAgent({ name: "sub", directory: "/w", architecture: "amd64", operatingSystem: "linux" });
      assert.deepEqual((await agent.listSubAgents({})).agents.map((s) => s.name), ["sub"]);
      await agent.deleteSubAgent({ id: sub.agent!.id });
      await agent.reportBoundaryLogs({ logs: [] });
      await agent.updateAppStatus({ slug: "web", state: UpdateAppStatusRequest_AppStatusState.WORKING, message: "busy", uri: "" });
      // Coder's own server stubs it; Coder's agent reads 12 as "feature absent".
      await rejectsWith(agent.pushContextState({ version: 1n }), Code.Unimplemented);
    });
    assert.equal(await rpcCount(srv, "coder.agent.v2.Agent", "GetManifest", "ok"), before + 1);
    assert.ok((await rpcCount(srv, "coder.agent.v2.Agent", "PushContextState", "Unimplemented")) >= 1);
  });

  test("a handler's error reaches the agent with its gRPC code and message", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const agent = createDrpcClient(Agent, tun.session);
      const times = { start: timestampNow(), end: timestampNow() };
      await rejectsWith(agent.scriptCompleted({ timing: { scriptId: new Uint8Array(4), ...times } }), Code.InvalidArgument, "script id from bytes");
      await rejectsWith(agent.scriptCompleted({ timing: { scriptId: uuidToBytes("11111111-2222-4333-8444-555555555555"), ...times } }), Code.NotFound);
      // The tunnel serves on.
      assert.equal((await agent.getServiceBanner({})).enabled, false);
    });
  });

  test("an unknown method is Unimplemented (12), and the same stream serves the next RPC", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const stream = tun.session.open();
      const connection = new DrpcClientConnection(stream);
      for (const path of ["/coder.agent.v2.Agent/NoSuchMethod", "/no.such.Service/Call"]) {
        const err = connectErrorOf(await connection.unary(path, new Uint8Array()).then(() => undefined, (e: unknown) => e));
        assert.equal(err.code, Code.Unimplemented, err.message);
      }
      // Sequential RPCs on one stream: this one is stream id 3.
      const banner = await connection.unary("/coder.agent.v2.Agent/GetServiceBanner", new Uint8Array());
      assert.deepEqual([...banner], []);
      stream.end();
    });
  });

  test("StreamDERPMaps sends the current map first; closing the yamux stream mid-call ends the handler and the server's side", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const ended = () => rpcCount(srv, "coder.tailnet.v2.Tailnet", "StreamDERPMaps", "ok").then(async (ok) => ok + (await rpcCount(srv, "coder.tailnet.v2.Tailnet", "StreamDERPMaps", "Canceled")));
      const before = await ended();
      for (const close of ["fin", "rst"] as const) {
        const { stream, connection } = drpcStream(tun.session);
        const call = connection.open("/coder.tailnet.v2.Tailnet/StreamDERPMaps");
        await call.send(new Uint8Array());
        call.closeSend();
        assert.ok((await call.receive()) !== undefined, "the first map");
        const serverSideGone = new Promise<void>((resolve) => {
          stream.once("end", resolve);
          stream.once("close", resolve);
        });
        if (close === "fin") stream.end();
        else stream.destroy();
        await serverSideGone;
      }
      // The handler returned for both: its call is counted only once it is over.
      await eventually(async () => ((await ended()) >= before + 2 ? true : undefined), 5_000, "both StreamDERPMaps handlers ended");
      assert.equal((await createDrpcClient(Agent, tun.session).getServiceBanner({})).enabled, false);
    });
  });

  test("Coordinate: UpdateSelf accepted; after the agent's Disconnect the server hangs up", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const call = createDrpcClient(Tailnet, tun.session).coordinate();
      await call.send({ updateSelf: { node: { id: 1n, preferredDerp: 1, key: new Uint8Array(32), disco: "discokey:00", addresses: nodeAddresses(a.agentId), allowedIps: nodeAddresses(a.agentId) } } });
      await call.send({ disconnect: {} });
      assert.equal(await call.receive(), undefined, "the server ends the call with Close, not an error");
      call.close();
    });
  });

  test("a node with another agent's address: Coordinate fails with PermissionDenied", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const call = createDrpcClient(Tailnet, tun.session).coordinate();
      await call.send({ updateSelf: { node: { id: 1n, addresses: nodeAddresses(crypto.randomUUID()) } } });
      const outcome = await call.receive().then(
        (m) => (m === undefined ? "hung up" : `message: ${m.error}`),
        (e: unknown) => `error ${Code[connectErrorOf(e).code]}`,
      );
      assert.equal(outcome, "error PermissionDenied");
      call.close();
    });
  });

  test("1-byte WebSocket messages carry DRPC as one byte stream", async () => {
    const a = await provisionAgent(t.db);
    const tunnel = await dialRawTunnel(srv.url, a.token, { chunkBytes: 1 });
    try {
      const agent = createDrpcClient(Agent, tunnel.session);
      assert.equal((await agent.getManifest({})).agentName, a.agentName);
      const maps = createDrpcClient(Tailnet, tunnel.session).streamDERPMaps({})[Symbol.asyncIterator]();
      assert.equal((await maps.next()).done, false);
      await maps.return?.();
    } finally {
      tunnel.ws.close();
      tunnel.session.destroy();
    }
  });

  test("a stream whose first byte no protocol sends is reset; the tunnel serves on", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const stream = tun.session.open();
      const reset = new Promise<string | undefined>((resolve) => stream.once("error", (err: Error & { code?: string }) => resolve(err.code)));
      stream.resume();
      stream.write(Buffer.from([0x00, 0x01, 0x01, 0x00]));
      assert.equal(await reset, "ERR_YAMUX_STREAM_RESET");
      assert.equal((await createDrpcClient(Agent, tun.session).getServiceBanner({})).enabled, false);
    });
  });

  test("an empty stream waits for its first byte (a bidi Invoke comes with the first message)", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      const { connection } = drpcStream(tun.session);
      const call = connection.open("/coder.agent.v2.Agent/GetServiceBanner");
      // The stream is open with nothing on it while other RPCs come and go.
      const agent = createDrpcClient(Agent, tun.session);
      for (let i = 0; i < 20; i++) await agent.getAnnouncementBanners({});
      await call.send(new Uint8Array());
      call.closeSend();
      assert.deepEqual([...((await call.receive()) ?? [0])], []);
      call.close();
    });
  });
});

/**
 * A TCP listener whose every connection is relayed into a new yamux stream of `session`: a
 * client dialling it (grpc-go with -direct) speaks HTTP/2 inside the tunnel.
 */
async function relayIntoTunnel(session: Session): Promise<{ address: string; close(): void }> {
  const sockets = new Set<Socket>();
  const listener: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const stream = session.open();
    socket.pipe(stream).pipe(socket);
    const done = () => {
      socket.destroy();
      stream.destroy();
      sockets.delete(socket);
    };
    socket.once("close", done).on("error", done);
    stream.once("close", done).on("error", done);
  });
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  return {
    address: `127.0.0.1:${(listener.address() as AddressInfo).port}`,
    close() {
      for (const s of sockets) s.destroy();
      listener.close();
    },
  };
}

describe("Connect, gRPC (Go probe) and DRPC streams in one tunnel at once", { skip: SKIP_INTEROP }, () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let a: ProvisionedAgent;
  before(async () => {
    srv = await startTestServer(t.db);
    a = await provisionAgent(t.db);
  });
  after(() => srv.close());

  test("all three protocols' calls succeed together on one yamux session", async () => {
    const kit = await interopKit();
    const tunnel = await dialRawTunnel(srv.url, a.token);
    const relay = await relayIntoTunnel(tunnel.session);
    try {
      const drpc = createDrpcClient(Agent, tunnel.session);
      const coordinate = createDrpcClient(Tailnet, tunnel.session).coordinate();
      await coordinate.send({ updateSelf: { node: { id: 1n, preferredDerp: 1, addresses: nodeAddresses(a.agentId) } } });
      const grpc = runTool(kit.agentprobe, ["-direct", relay.address, "-token", "unused-inside-the-tunnel", "-desc", kit.descriptorSet, "soak", "-n", "300", "-c", "8", "coder.agent.v2.Agent/GetManifest", "{}"]);
      const loop = async (call: () => Promise<{ agentName: string }>) => {
        for (let i = 0; i < 100; i++) assert.equal((await call()).agentName, a.agentName);
      };
      await Promise.all([loop(() => tunnel.agent.getManifest({})), loop(() => drpc.getManifest({})), loop(() => drpc.getManifest({}))]);
      const probe = await grpc;
      assert.equal(probe.code, 0, probe.stderr);
      assert.match(probe.stdout + probe.stderr, /soak: calls=300 ok=300 errors=0/);
      await coordinate.send({ disconnect: {} });
      assert.equal(await coordinate.receive(), undefined);
      coordinate.close();
      await kit.cleanup();
    } finally {
      relay.close();
      tunnel.ws.close();
      tunnel.session.destroy();
    }
  });
});
