/**
 * The lean unary path against connect-node's router: the same service behind a server with the
 * lean path and one without (`--connect-unary`), called by the same clients (connect-es over
 * gRPC and Connect on the plain port, the agent SDK through the tunnel, and the interop kit's
 * clients), must look the same from every client: results, errors with code, message, details
 * and metadata, response headers and trailers, deadlines, cancellation, size limits, metrics.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { connect as http2Connect, constants as http2Constants } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type HandlerContext, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Agent, ServiceBannerSchema } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { connectAgent, type AgentConnection } from "../../src/client/index.js";
import type { Database } from "../../src/db/database.js";
import { silentLogger } from "../../src/log.js";
import { rpcRegistration } from "../../src/rpc/index.js";
import { AgentServer } from "../../src/server/agent-server.js";
import { agentServerStore } from "../../src/server/agent-store.js";
import { IdentityWatch } from "../../src/server/identity-watch.js";
import { testServerConfig } from "../support/agent-server.js";
import { forEachEngine, useTestDatabase } from "../support/database.js";
import { makeWorkspace } from "../support/fixtures.js";
import { interopKit, runTool, SKIP_INTEROP, type InteropKit } from "../support/interop-kit.js";

const AGENT = "coder.agent.v2.Agent";
const BEHAVIOUR = "x-parity";
/** Just over the 4 MiB a request message may have. */
const TOO_BIG = 4 * 1024 * 1024 + 1;

/** What every server's GetServiceBanner does, by the `x-parity` request header; the rest of Agent is the real thing's shape. */
class ParityService {
  /** Reasons the handlers' signals aborted with, in order. */
  readonly aborts: unknown[] = [];
  private waiting: (() => void)[] = [];

  /** Resolves once a handler waits on its signal. */
  handlerWaiting(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  readonly impl: Partial<ServiceImpl<typeof Agent>> = {
    getServiceBanner: async (_req, ctx: HandlerContext) => {
      switch (ctx.requestHeader.get(BEHAVIOUR)) {
        case "headers":
          ctx.responseHeader.set("x-answer-header", "h1");
          ctx.responseTrailer.set("x-answer-trailer", "t1");
          return { enabled: true, message: "with headers" };
        case "error":
          ctx.responseHeader.set("x-answer-header", "h1");
          throw new ConnectError("boom: ü%", Code.FailedPrecondition, { "x-error-meta": "m1" }, [{ desc: ServiceBannerSchema, value: { message: "detail" } }]);
        case "plain-error":
          throw new Error("plain failure");
        case "wait": {
          const signal = ctx.signal;
          const aborted = new Promise<unknown>((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
          for (const w of this.waiting.splice(0)) w();
          this.aborts.push(await aborted);
          throw signal.reason;
        }
        default:
          return { enabled: true, message: "hello", backgroundColor: "#123456" };
      }
    },
    batchCreateLogs: () => ({}),
  };
}

/**
 * Every other method of `service` answering FailedPrecondition, so the server offers the API
 * versions agents dial with; the methods named in `leaveOut` stay unimplemented.
 */
function withStubs<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, leaveOut: string[] = []): Partial<ServiceImpl<S>> {
  const all: Record<string, unknown> = { ...impl };
  for (const method of service.methods) {
    if (all[method.localName] === undefined && !leaveOut.includes(method.localName)) {
      all[method.localName] = () => {
        throw new ConnectError("not part of the parity service", Code.FailedPrecondition);
      };
    }
  }
  return all as Partial<ServiceImpl<S>>;
}

interface ParityServer {
  server: AgentServer;
  service: ParityService;
  url: string;
  hostPort: string;
}

/** `tunnelHttp2`: what serves HTTP/2 in tunnels (`--tunnel-http2`); "agentgate" is the third server of the matrix. */
async function startParityServer(db: Database, leanUnary: boolean, tunnelHttp2: "node" | "agentgate" = "node"): Promise<ParityServer> {
  const service = new ParityService();
  const replicaId = randomUUID();
  const config = testServerConfig({ leanUnary, tunnelHttp2 });
  const watch = await IdentityWatch.start({ db, background: db.background, pubsub: db.pubsub, sweepIntervalMs: config.agentUpdateIntervalMs, logger: silentLogger() });
  const server = await AgentServer.start({
    config,
    watch,
    closeOnShutdown: [{ close: async () => watch.close() }],
    store: agentServerStore(db, replicaId),
    logger: silentLogger(),
    replicaId,
    agentServices: [rpcRegistration(Agent, withStubs(Agent, service.impl, ["pushContextState"])), rpcRegistration(Tailnet, withStubs(Tailnet, {}))],
    publishConnectionUpdate: () => undefined,
  });
  const hostPort = `127.0.0.1:${server.address.port}`;
  return { server, service, url: `http://${hostPort}`, hostPort };
}

/** What a client saw of one call, in a form two runs can be compared by. */
interface Outcome {
  result?: unknown;
  code?: string;
  message?: string;
  details?: unknown[];
  meta?: string | null;
  header?: string | null;
  trailer?: string | null;
}

async function outcomeOf(call: (options: { onHeader(h: Headers): void; onTrailer(t: Headers): void }) => Promise<unknown>): Promise<Outcome> {
  const seen: Outcome = {};
  const options = {
    onHeader: (h: Headers) => (seen.header = h.get("x-answer-header")),
    onTrailer: (t: Headers) => (seen.trailer = t.get("x-answer-trailer")),
  };
  try {
    const result = (await call(options)) as { enabled?: boolean; message?: string; backgroundColor?: string };
    seen.result = { enabled: result.enabled, message: result.message, backgroundColor: result.backgroundColor };
  } catch (err) {
    const e = ConnectError.from(err);
    seen.code = Code[e.code];
    seen.message = e.rawMessage;
    seen.details = e.findDetails(ServiceBannerSchema).map((d) => d.message);
    seen.meta = e.metadata.get("x-error-meta");
  }
  return seen;
}

type AgentClient = Client<typeof Agent>;

/** The cases every client runs against both servers, with what the client must see. */
function cases(srv: () => ParityServer): [name: string, run: (client: AgentClient) => Promise<Outcome>, expected: Partial<Outcome>][] {
  const banner = (behaviour: string, extra: { timeoutMs?: number } = {}) => (client: AgentClient) =>
    outcomeOf((o) => client.getServiceBanner({}, { headers: { [BEHAVIOUR]: behaviour }, ...o, ...extra }));
  return [
    ["a result", banner("ok"), { result: { enabled: true, message: "hello", backgroundColor: "#123456" } }],
    ["response headers and trailers a handler set", banner("headers"), { header: "h1", trailer: "t1", result: { enabled: true, message: "with headers", backgroundColor: "" } }],
    ["an error with code, message, details and metadata", banner("error"), { code: "FailedPrecondition", message: "boom: ü%", details: ["detail"], meta: "m1" }],
    ["a thrown Error", banner("plain-error"), { code: "Unknown", message: "plain failure" }],
    ["a deadline", banner("wait", { timeoutMs: 150 }), { code: "DeadlineExceeded" }],
    ["an unimplemented method", (client) => outcomeOf((o) => client.pushContextState({}, o)), { code: "Unimplemented" }],
    [
      "a request over 4 MiB",
      (client) => outcomeOf((o) => client.batchCreateLogs({ logs: [{ output: "x".repeat(TOO_BIG) }] }, o)),
      { code: "ResourceExhausted" },
    ],
    [
      "client cancellation aborts the handler",
      async (client) => {
        const waiting = srv().service.handlerWaiting();
        const abort = new AbortController();
        const outcome = outcomeOf((o) => client.getServiceBanner({}, { headers: { [BEHAVIOUR]: "wait" }, signal: abort.signal, ...o }));
        await waiting;
        const aborted = srv().service.aborts.length;
        abort.abort();
        const seen = await outcome;
        // The handler sees its signal abort once the server reads the RST_STREAM.
        while (srv().service.aborts.length === aborted) await new Promise((r) => setImmediate(r));
        const reason = ConnectError.from(srv().service.aborts.at(-1));
        return { code: seen.code, message: Code[reason.code] };
      },
      { code: "Canceled", message: "Canceled" },
    ],
  ];
}

forEachEngine((t) => {
  describe("lean unary path and connect-node answer alike (Node clients)", () => {
    const servers: Record<"lean" | "connect" | "own", ParityServer | undefined> = { lean: undefined, connect: undefined, own: undefined };
    const tunnels: AgentConnection[] = [];
    let token: string;
    before(async () => {
      servers.lean = await startParityServer(t.db, true);
      servers.connect = await startParityServer(t.db, false);
      servers.own = await startParityServer(t.db, true, "agentgate");
      token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
    });
    after(async () => {
      await Promise.all(tunnels.map((c) => c.close()));
      await servers.lean?.server.shutdown();
      await servers.connect?.server.shutdown();
      await servers.own?.server.shutdown();
    });

    const withToken: Interceptor = (next) => (req) => {
      req.header.set("Coder-Session-Token", token);
      return next(req);
    };
    const clients: [string, (srv: ParityServer) => AgentClient][] = [
      ["plain port, gRPC", (srv) => createClient(Agent, createGrpcTransport({ baseUrl: srv.url, interceptors: [withToken] }))],
      ["plain port, Connect", (srv) => createClient(Agent, createConnectTransport({ baseUrl: srv.url, httpVersion: "2", interceptors: [withToken] }))],
      ["tunnel, gRPC", (srv) => tunnelClient(srv, "grpc")],
      ["tunnel, Connect", (srv) => tunnelClient(srv, "connect")],
    ];
    function tunnelClient(srv: ParityServer, protocol: "grpc" | "connect"): AgentClient {
      const connection = connectAgent({ url: srv.url, token, protocol, keepaliveIntervalMs: 0 });
      tunnels.push(connection);
      return connection.agent;
    }

    for (const [clientName, makeClient] of clients) {
      describe(clientName, () => {
        const byServer = new Map<ParityServer, AgentClient>();
        const clientOf = (srv: ParityServer) => byServer.get(srv) ?? byServer.set(srv, makeClient(srv)).get(srv)!;
        for (const mode of ["lean", "connect", "own"] as const) {
          for (const [name, run, expected] of cases(() => servers[mode]!)) {
            test(`${mode}: ${name}`, { timeout: 8_000 }, async () => {
              const seen = await run(clientOf(servers[mode]!));
              for (const [key, value] of Object.entries(expected)) assert.deepEqual(seen[key as keyof Outcome], value, `${key} of ${JSON.stringify(seen)}`);
            });
          }
        }
      });
    }

    test("the deadline a client sends aborts the handler with DeadlineExceeded and answers it", async () => {
      // Raw HTTP/2, so that no client-side timer races the server's with a cancellation.
      for (const srv of [servers.lean!, servers.connect!]) {
        const before = srv.service.aborts.length;
        const status = await grpcStatusOf(srv, { "grpc-timeout": "100m", [BEHAVIOUR]: "wait" });
        assert.equal(status, String(Code.DeadlineExceeded));
        assert.equal(Code[ConnectError.from(srv.service.aborts[before]).code], "DeadlineExceeded");
      }
    });

    test("both paths count the same calls in agentgate_rpcs_total, and a caller without a token as a refused request", async () => {
      const counts = async (srv: ParityServer) =>
        new Map(
          (await (await fetch(`${srv.url}/metrics`)).text())
            .split("\n")
            .filter((l) => l.startsWith("agentgate_rpcs_total{") || l.startsWith('agentgate_requests_refused_total{reason="unauthenticated"}'))
            .map((l) => [l.slice(0, l.lastIndexOf(" ")), Number(l.slice(l.lastIndexOf(" ") + 1))] as const),
        );
      const deltas = [];
      for (const srv of [servers.lean!, servers.connect!]) {
        const client = createClient(Agent, createGrpcTransport({ baseUrl: srv.url, interceptors: [withToken] }));
        const stranger = createClient(Agent, createConnectTransport({ baseUrl: srv.url, httpVersion: "2" }));
        const before = await counts(srv);
        for (const behaviour of ["ok", "ok", "error", "plain-error"]) await outcomeOf((o) => client.getServiceBanner({}, { headers: { [BEHAVIOUR]: behaviour }, ...o }));
        await outcomeOf((o) => client.pushContextState({}, o));
        await outcomeOf((o) => client.batchCreateLogs({ logs: [{ output: "x".repeat(TOO_BIG) }] }, o));
        await outcomeOf((o) => stranger.getServiceBanner({}, o));
        const after = await counts(srv);
        deltas.push([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)]).filter(([, d]) => d !== 0).sort());
      }
      assert.deepEqual(deltas[0], deltas[1]);
      const lines = deltas[0]!.map(([k, d]) => `${k} ${d}`);
      assert.ok(!lines.some((l) => l.includes('code="Unauthenticated"')), "refused before the RPC: not an RPC");
      for (const expected of ['GetServiceBanner",code="ok"} 2', 'GetServiceBanner",code="FailedPrecondition"} 1', 'PushContextState",code="Unimplemented"} 1', 'agentgate_requests_refused_total{reason="unauthenticated"} 1']) {
        assert.ok(lines.some((l) => l.endsWith(expected)), `${expected} in\n${lines.join("\n")}`);
      }
    });

    test("lean: the plain port refuses a bad token from the headers, before reading the body", async () => {
      const session = http2Connect(servers.lean!.url);
      try {
        const stream = session.request({
          ":method": "POST",
          ":path": `/${AGENT}/GetServiceBanner`,
          "content-type": "application/grpc",
          "coder-session-token": randomUUID(),
        });
        // A body that promises more than it sends and never ends: only the headers can decide.
        const envelope = Buffer.alloc(5 + 1024);
        envelope.writeUInt32BE(TOO_BIG, 1);
        stream.write(envelope);
        const [headers, flags] = (await once(stream, "response")) as [Record<string, string>, number];
        assert.equal(headers["grpc-status"], String(Code.Unauthenticated));
        // Trailers-only: the status came in the HEADERS frame that ended the stream.
        assert.ok(flags & http2Constants.NGHTTP2_FLAG_END_STREAM, `flags ${flags}`);
        stream.destroy();
      } finally {
        session.destroy();
      }
    });

    test("lean: a gRPC error is one HEADERS frame that ends the stream, with grpc-status-details-bin", async () => {
      const session = http2Connect(servers.lean!.url);
      try {
        const stream = session.request({
          ":method": "POST",
          ":path": `/${AGENT}/GetServiceBanner`,
          "content-type": "application/grpc",
          "coder-session-token": token,
          [BEHAVIOUR]: "error",
        });
        stream.end(Buffer.alloc(5));
        const [headers, flags] = (await once(stream, "response")) as [Record<string, string>, number];
        assert.equal(headers["grpc-status"], String(Code.FailedPrecondition));
        assert.equal(headers["grpc-message"], encodeURIComponent("boom: ü%"));
        assert.ok(headers["grpc-status-details-bin"]);
        assert.equal(headers["x-answer-header"], "h1");
        assert.ok(flags & http2Constants.NGHTTP2_FLAG_END_STREAM, `flags ${flags}`);
        stream.destroy();
      } finally {
        session.destroy();
      }
    });

    test("an invalid grpc-timeout is InvalidArgument on both paths", async () => {
      for (const srv of [servers.lean!, servers.connect!]) assert.equal(await grpcStatusOf(srv, { "grpc-timeout": "soon" }), String(Code.InvalidArgument));
    });

    /** One gRPC call with an empty request over raw HTTP/2; resolves with the grpc-status it ends with. */
    async function grpcStatusOf(srv: ParityServer, extra: Record<string, string>): Promise<string | undefined> {
      const session = http2Connect(srv.url);
      try {
        const stream = session.request({ ":method": "POST", ":path": `/${AGENT}/GetServiceBanner`, "content-type": "application/grpc", "coder-session-token": token, ...extra });
        stream.end(Buffer.alloc(5));
        return await new Promise<string | undefined>((resolve) => {
          stream.on("response", (h: Record<string, string>) => h["grpc-status"] && resolve(h["grpc-status"]));
          stream.on("trailers", (h: Record<string, string>) => resolve(h["grpc-status"]));
          stream.resume();
        });
      } finally {
        session.destroy();
      }
    }
  });
});

describe("lean unary path and connect-node answer alike (the interop kit's clients)", { skip: SKIP_INTEROP }, () => {
  const t = useTestDatabase();
  let kit: InteropKit;
  let lean: ParityServer;
  let connect: ParityServer;
  let own: ParityServer;
  let token: string;
  let dir: string;
  let bigRequest: string;
  before(async () => {
    kit = await interopKit();
    lean = await startParityServer(t.db, true);
    connect = await startParityServer(t.db, false);
    own = await startParityServer(t.db, true, "agentgate");
    token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
    dir = await mkdtemp(join(tmpdir(), "agentgate-parity-"));
    bigRequest = join(dir, "big.json");
    await writeFile(bigRequest, JSON.stringify({ logs: [{ output: "x".repeat(TOO_BIG) }] }));
  });
  after(async () => {
    await lean?.server.shutdown();
    await connect?.server.shutdown();
    await own?.server.shutdown();
    await kit?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Runs a client against the three servers; its exit code and output must match, and `check` holds for them. */
  async function bothAlike(args: (srv: ParityServer) => [string, string[]], check: (out: { code: number | null; text: string }) => void): Promise<void> {
    const outs = [];
    for (const srv of [lean, connect, own]) {
      const [tool, argv] = args(srv);
      const res = await runTool(tool, argv, { timeoutMs: 60_000 });
      // Ports differ between the servers; nothing else may.
      const text = (res.stdout + res.stderr)
        .replaceAll(srv.hostPort, "HOST")
        .replaceAll(String(srv.server.address.port), "PORT")
        // A deadline is a race of two timers, the client's own and the server's (each ends the call
        // with DeadlineExceeded, in its own words); either may win against either server.
        .replace(/message="(context deadline exceeded|the operation timed out)"/, 'message="DEADLINE"');
      outs.push({ code: res.code, text });
    }
    assert.deepEqual(outs[0], outs[1]);
    assert.deepEqual(outs[0], outs[2], "--tunnel-http2 agentgate answers as node:http2 does");
    check(outs[0]!);
  }

  const probeCases: [string, string[], (out: { code: number | null; text: string }) => void][] = [
    ["a result", ["-H", `${BEHAVIOUR}: ok`, "call", `${AGENT}/GetServiceBanner`, "{}"], (o) => assert.match(o.text, /"message":"hello"/)],
    ["an error", ["-H", `${BEHAVIOUR}: error`, "call", `${AGENT}/GetServiceBanner`, "{}"], (o) => assert.match(o.text, /code=FailedPrecondition message="boom: ü%"/)],
    ["a deadline", ["-timeout", "200ms", "-H", `${BEHAVIOUR}: wait`, "call", `${AGENT}/GetServiceBanner`, "{}"], (o) => assert.match(o.text, /code=DeadlineExceeded/)],
    ["an unimplemented method", ["call", `${AGENT}/PushContextState`, "{}"], (o) => assert.match(o.text, /code=Unimplemented/)],
  ];
  for (const direct of [false, true]) {
    for (const [name, args, check] of probeCases) {
      test(`agentprobe${direct ? " -direct" : ""}: ${name}`, () =>
        bothAlike((srv) => [kit.agentprobe, ["-url", srv.url, "-token", token, "-desc", kit.descriptorSet, ...(direct ? ["-direct", srv.hostPort] : []), ...args]], check));
    }
    test(`agentprobe${direct ? " -direct" : ""}: a request over 4 MiB`, () =>
      bothAlike(
        (srv) => [kit.agentprobe, ["-url", srv.url, "-token", token, "-desc", kit.descriptorSet, ...(direct ? ["-direct", srv.hostPort] : []), "call", `${AGENT}/BatchCreateLogs`, `@${bigRequest}`]],
        (o) => assert.match(o.text, /code=ResourceExhausted/),
      ));
  }

  for (const [protocol, extra] of [
    ["connect", []],
    ["grpc", ["--http2-prior-knowledge"]],
    ["grpcweb", []],
  ] as const) {
    const curl = (srv: ParityServer, behaviour: string, method = "GetServiceBanner"): [string, string[]] => [
      kit.buf,
      ["curl", "--protocol", protocol, ...extra, "--schema", kit.descriptorSet, "-H", `Coder-Session-Token: ${token}`, "-H", `${BEHAVIOUR}: ${behaviour}`, "-d", "{}", `${srv.url}/${AGENT}/${method}`],
    ];
    test(`buf curl --protocol ${protocol}: a result`, () => bothAlike((srv) => curl(srv, "ok"), (o) => assert.match(o.text, /"message": "hello"/)));
    test(`buf curl --protocol ${protocol}: an error with details`, () =>
      bothAlike(
        (srv) => curl(srv, "error"),
        (o) => {
          assert.match(o.text, /"code": "failed_precondition"/);
          assert.match(o.text, /"message": "boom: ü%"/);
          assert.match(o.text, /coder\.agent\.v2\.ServiceBanner/);
        },
      ));
    test(`buf curl --protocol ${protocol}: an unimplemented method`, () => bothAlike((srv) => curl(srv, "ok", "PushContextState"), (o) => assert.match(o.text, /"code": "unimplemented"/)));
  }

  // pyprobe sends no metadata but the token: the default behaviour and an unimplemented method.
  for (const [name, method, expected] of [
    ["a result", "GetServiceBanner", /"message": ?"hello"/],
    ["an unimplemented method", "PushContextState", /UNIMPLEMENTED/],
  ] as const) {
    test(`pyprobe: ${name}`, () =>
      bothAlike(
        (srv) => ["/usr/bin/python3", [join(kit.src, "pyprobe.py"), "--token", token, srv.hostPort, kit.descriptorSet, `${AGENT}/${method}`, "{}"]],
        (o) => assert.match(o.text, expected),
      ));
  }
});
