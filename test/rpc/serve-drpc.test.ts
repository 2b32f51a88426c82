/**
 * DRPC end to end: the agent-like client and the server connection over a real yamux session on a
 * real TCP socket, served by the RPC core with the generated Agent and Tailnet descriptors.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet, type DERPMapSchema } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { agentIdentityKey, type AgentIdentity } from "../../src/auth/agent-identity.js";
import { DrpcClientConnection, DrpcError, DrpcServerConnection, DrpcSessionClient, type DrpcCall } from "../../src/drpc/index.js";
import { createDrpcClient, RpcCore, rpcRegistration, serveDrpc, type RpcObserver } from "../../src/rpc/index.js";
import type { Duplex } from "node:stream";
import type { Session, Stream } from "../../src/yamux/index.js";
import { oneByteWrites, yamuxOverTcp } from "../drpc/support.js";

const identity: AgentIdentity = {
  agentId: "a1",
  agentName: "dev",
  workspaceId: "w1",
  workspaceName: "box",
  ownerId: "o1",
  ownerUsername: "alice",
  buildId: "b1",
  buildNumber: 1,
  apiVersion: "2.13",
  replicaId: "r1",
};

/** A promise with its resolver, for events a handler reports. */
interface Signalled<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}
function signalled<T = void>(): Signalled<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** What the test services report, reset per test. */
let events: { logsStarted: Signalled<void>; logsAborted: Signalled<unknown>; coordinateEnded: Signalled<unknown> };
function resetEvents(): void {
  events = { logsStarted: signalled(), logsAborted: signalled(), coordinateEnded: signalled() };
}

function derpMap(regionId: number, regionCode: string): MessageInitShape<typeof DERPMapSchema> {
  return { regions: { [regionId]: { regionId: BigInt(regionId), regionCode } } };
}

const agent: Partial<ServiceImpl<typeof Agent>> = {
  getManifest(_req, ctx) {
    return { agentName: ctx.values.get(agentIdentityKey)?.agentName ?? "anonymous" };
  },
  updateStats() {
    throw new ConnectError("no stats for you", Code.NotFound);
  },
  async batchCreateLogs(_req, ctx) {
    events.logsStarted.resolve();
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
    events.logsAborted.resolve(ctx.signal.reason);
    return {};
  },
};

const tailnet: Partial<ServiceImpl<typeof Tailnet>> = {
  async *streamDERPMaps() {
    yield derpMap(1, "one");
    yield derpMap(2, "two");
  },
  async *coordinate(requests, ctx) {
    try {
      for await (const request of requests) {
        if (request.disconnect !== undefined) return;
        yield { error: `ack:${request.updateSelf?.node?.preferredDerp ?? 0}` };
      }
    } finally {
      events.coordinateEnded.resolve(ctx.signal.aborted ? ctx.signal.reason : "returned");
    }
  },
};

describe("DRPC through the RPC core over yamux on TCP", () => {
  let pair: Awaited<ReturnType<typeof yamuxOverTcp>>;
  let serverStreams: Stream[];
  let outcomes: { method: string; code: Code | undefined }[];
  /** What the server serves DRPC on: the yamux stream itself, unless a test wraps it. */
  let serverTransport: (stream: Stream) => Duplex = (stream) => stream;
  const observer: RpcObserver = (_service, method, code) => void outcomes.push({ method: method.name, code });

  before(async () => {
    pair = await yamuxOverTcp();
    const values = createContextValues().set(agentIdentityKey, identity);
    const core = new RpcCore([rpcRegistration(Agent, agent), rpcRegistration(Tailnet, tailnet)], { observer });
    pair.server.on("stream", (stream: Stream) => {
      serverStreams.push(stream);
      serveDrpc(serverTransport(stream), core, values);
    });
  });
  after(() => pair.close());

  function fresh(): { session: Session; agentClient: ReturnType<typeof createDrpcClient<typeof Agent>>; tailnetClient: ReturnType<typeof createDrpcClient<typeof Tailnet>> } {
    serverStreams = [];
    outcomes = [];
    resetEvents();
    return { session: pair.client, agentClient: createDrpcClient(Agent, pair.client), tailnetClient: createDrpcClient(Tailnet, pair.client) };
  }

  it("unary GetManifest answers from the connection's context values, one yamux stream per RPC", async () => {
    const { agentClient } = fresh();
    assert.equal((await agentClient.getManifest({})).agentName, "dev");
    assert.equal((await agentClient.getManifest({})).agentName, "dev");
    assert.equal(serverStreams.length, 2);
    await Promise.all(serverStreams.map((s) => (s.closed ? undefined : once(s, "close"))));
    assert.deepEqual(outcomes, [
      { method: "GetManifest", code: undefined },
      { method: "GetManifest", code: undefined },
    ]);
  });

  it("server stream StreamDERPMaps: both maps, then the server ends it with Close, as coderd does", async () => {
    const { session } = fresh();
    const call = new DrpcSessionClient(session).open("/coder.tailnet.v2.Tailnet/StreamDERPMaps");
    void call.send(new Uint8Array(0));
    call.closeSend();
    const maps: number[] = [];
    for await (const message of call.messages()) maps.push(message.length);
    assert.equal(maps.length, 2);
    assert.equal((call.signal.reason as DrpcError).message, "remote closed the stream");
  });

  it("server stream through the typed client yields the decoded maps", async () => {
    const { tailnetClient } = fresh();
    const codes: string[] = [];
    for await (const map of tailnetClient.streamDERPMaps({})) codes.push(...Object.values(map.regions).map((r) => r.regionCode));
    assert.deepEqual(codes, ["one", "two"]);
  });

  it("bidi Coordinate: each update is answered; after Disconnect the server hangs up with Close", async () => {
    const { tailnetClient } = fresh();
    const call = tailnetClient.coordinate();
    await call.send({ updateSelf: { node: { preferredDerp: 7 } } });
    assert.equal((await call.receive())?.error, "ack:7");
    await call.send({ updateSelf: { node: { preferredDerp: 8 } } });
    assert.equal((await call.receive())?.error, "ack:8");
    await call.send({ disconnect: {} });
    assert.equal(await call.receive(), undefined, "the server ended the call");
    assert.equal(await events.coordinateEnded.promise, "returned");
  });

  it("a silent yamux stream (a bidi whose Invoke is not sent yet) waits while other RPCs run, then is served", async () => {
    const { tailnetClient, agentClient } = fresh();
    const call = tailnetClient.coordinate();
    assert.equal((await agentClient.getManifest({})).agentName, "dev");
    await pair.client.ping();
    assert.equal(serverStreams.length, 2, "the bidi's stream is open on the server, with no bytes yet");
    await call.send({ updateSelf: { node: { preferredDerp: 3 } } });
    assert.equal((await call.receive())?.error, "ack:3");
    call.close();
    assert.equal(((await events.coordinateEnded.promise) as ConnectError).code, Code.Canceled, "the client's Close is a cancellation");
  });

  it("a handler's error arrives with its code and message", async () => {
    const { agentClient } = fresh();
    await assert.rejects(agentClient.updateStats({}), (err: ConnectError) => {
      assert.equal(err.code, Code.NotFound);
      assert.equal(err.rawMessage, "no stats for you");
      return true;
    });
    assert.deepEqual(outcomes, [{ method: "UpdateStats", code: Code.NotFound }]);
  });

  it("an unknown method and an unimplemented one both get code 12", async () => {
    const { session, agentClient } = fresh();
    await assert.rejects(new DrpcSessionClient(session).unary("/coder.agent.v2.Agent/NoSuchThing", new Uint8Array(0)), (err: DrpcError) => {
      assert.equal(err.wireCode, 12);
      assert.equal(err.message, "unknown method /coder.agent.v2.Agent/NoSuchThing");
      return true;
    });
    await assert.rejects(agentClient.updateLifecycle({}), (err: ConnectError) => err.code === Code.Unimplemented);
    assert.deepEqual(outcomes, [{ method: "UpdateLifecycle", code: Code.Unimplemented }]);
  });

  for (const how of ["end", "destroy"] as const) {
    it(`closing the yamux stream mid-call (${how === "end" ? "FIN" : "RST"}) aborts the handler's signal and closes the server side`, async () => {
      const { session } = fresh();
      const stream = session.open();
      stream.on("error", () => {});
      const call = new DrpcClientConnection(stream).unary("/coder.agent.v2.Agent/BatchCreateLogs", new Uint8Array(0));
      call.catch(() => {});
      await events.logsStarted.promise;
      stream[how]();
      const reason = await events.logsAborted.promise;
      assert.equal((reason as ConnectError).code, Code.Canceled);
      const [serverStream] = serverStreams;
      if (!serverStream!.closed) await once(serverStream!, "close");
      await assert.rejects(call);
    });
  }

  it("several sequential RPCs on one yamux stream use stream ids 1, 2, 3, ...", async () => {
    const { session } = fresh();
    const connection = new DrpcClientConnection(session.open());
    const agentOnOne = createDrpcClient(Agent, connection);
    for (let i = 0; i < 3; i++) assert.equal((await agentOnOne.getManifest({})).agentName, "dev");
    const call = connection.open("/coder.agent.v2.Agent/GetManifest");
    void call.send(new Uint8Array(0));
    call.closeSend();
    assert.ok(await call.receive());
    assert.equal(call.id, 4);
    assert.equal(serverStreams.length, 1);
    connection.close();
  });

  it("a newer RPC on the same stream cancels the bidi in progress, then is answered", async () => {
    const { session } = fresh();
    const connection = new DrpcClientConnection(session.open());
    const tailnetOnOne = createDrpcClient(Tailnet, connection);
    const coordinate = tailnetOnOne.coordinate();
    await coordinate.send({ updateSelf: { node: { preferredDerp: 1 } } });
    assert.equal((await coordinate.receive())?.error, "ack:1");
    const manifest = await createDrpcClient(Agent, connection).getManifest({});
    assert.equal(manifest.agentName, "dev");
    assert.equal(((await events.coordinateEnded.promise) as ConnectError).code, Code.Canceled);
    await assert.rejects(coordinate.receive(), (err: ConnectError) => err.code === Code.Canceled);
    connection.close();
  });

  it("one-byte chunks both ways: unary and server stream still work", async () => {
    const { session } = fresh();
    let largestChunk = 0;
    const measured = (stream: Stream): Stream => stream.on("data", (chunk: Buffer) => void (largestChunk = Math.max(largestChunk, chunk.length)));
    serverTransport = (stream) => oneByteWrites(measured(stream));
    try {
      const open = () => new DrpcClientConnection(oneByteWrites(measured(session.open())), { endAfterRpc: true });
      assert.equal((await createDrpcClient(Agent, open()).getManifest({})).agentName, "dev");
      const codes: string[] = [];
      for await (const map of createDrpcClient(Tailnet, open()).streamDERPMaps({})) codes.push(...Object.values(map.regions).map((r) => r.regionCode));
      assert.deepEqual(codes, ["one", "two"]);
      assert.equal(largestChunk, 1, "every read on either side was one byte");
    } finally {
      serverTransport = (stream) => stream;
    }
  });
});

describe("DRPC server connection over yamux on TCP, raw handlers", () => {
  it("a server stream whose handler just returns ends with CloseSend", async () => {
    const pair = await yamuxOverTcp();
    pair.server.on("stream", (stream: Stream) => {
      new DrpcServerConnection(stream, async (call) => {
        await call.receive();
        await call.send(Buffer.from("a"));
        await call.send(Buffer.from("b"));
      });
    });
    const call = new DrpcSessionClient(pair.client).open("/x.v1.X/Stream");
    void call.send(new Uint8Array(0));
    call.closeSend();
    const got: string[] = [];
    for await (const message of call.messages()) got.push(Buffer.from(message).toString());
    assert.deepEqual(got, ["a", "b"]);
    assert.equal((call.signal.reason as DrpcError).message, "stream terminated by both issuing close send");
    await pair.close();
  });

  it("a handler that does not read gets a bounded queue: the yamux stream pauses, then every message arrives in order", async () => {
    const pair = await yamuxOverTcp();
    const startReading = signalled();
    const received = signalled<string[]>();
    let serverStream: Stream | undefined;
    pair.server.on("stream", (stream: Stream) => {
      serverStream = stream;
      new DrpcServerConnection(
        stream,
        async (call: DrpcCall) => {
          await startReading.promise;
          const got: string[] = [];
          for await (const message of call.messages()) got.push(Buffer.from(message).toString());
          received.resolve(got);
        },
        { maxQueuedMessages: 4 },
      );
    });
    const call = new DrpcSessionClient(pair.client).open("/x.v1.X/Bidi");
    const sent = Array.from({ length: 100 }, (_, i) => String(i));
    for (const message of sent) await call.send(Buffer.from(message));
    await pair.client.ping(); // the server has taken in everything sent before the pong
    assert.equal(serverStream!.isPaused(), true);
    startReading.resolve();
    call.closeSend();
    assert.deepEqual(await received.promise, sent);
    assert.equal(serverStream!.isPaused(), false);
    await pair.close();
  });
});
