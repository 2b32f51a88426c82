import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as http2Connect, constants, type ClientHttp2Session } from "node:http2";
import { connect as tcpConnect, type Socket } from "node:net";
import { once } from "node:events";
import { WebSocket } from "ws";
import { Flag, FrameType, frameHeader } from "../../src/yamux/frame.js";
import { makeWorkspace } from "../support/fixtures.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";
import { rawGet } from "../support/http.js";

const MANIFEST_PATH = "/coder.agent.v2.Agent/GetManifest";
const CONTROL_PATH = "/agentgate.control.v1.ControlService/ListAgents";

/** Opens a TCP connection to the server and resolves once it is up. */
function openTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Everything the server sends until it closes the connection. */
function readUntilClose(socket: Socket): Promise<string> {
  let text = "";
  socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
  socket.on("error", () => undefined);
  return new Promise((resolve) => socket.once("close", () => resolve(text)));
}

/** A request head declaring a large body; the caller sends only part of it. */
function postHead(path: string, contentLength: number, headers: Record<string, string> = {}): string {
  const lines = [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", "Content-Type: application/json", `Content-Length: ${contentLength}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

async function refusedCount(srv: TestServer, reason: string): Promise<number> {
  const metric = await srv.server.metrics.requestsRefused.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

function h2(srv: TestServer): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(srv.url);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

/** Opens an HTTP/2 request that declares `contentLength` bytes, sends `sent` of them, and resolves with the response head. */
function h2Post(session: ClientHttp2Session, headers: Record<string, string>, contentLength: number, sent: number) {
  const stream = session.request({ ":method": "POST", ":path": MANIFEST_PATH, "content-type": "application/json", "content-length": String(contentLength), ...headers });
  stream.on("error", () => undefined);
  stream.write(Buffer.alloc(sent, 0x20));
  const response = new Promise<{ status: number | undefined; body: string; reset: number | undefined }>((resolve) => {
    let status: number | undefined;
    let body = "";
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (c: Buffer) => (body += c.toString()));
    stream.once("close", () => resolve({ status, body, reset: stream.rstCode }));
  });
  return { stream, response };
}

forEachEngine((t) => {
  describe("credentials before any body byte", () => {
    let srv: TestServer;
    let token: string;
    before(async () => {
      srv = await startTestServer(t.db, { adminToken: "the-admin-token" });
      token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
    });
    after(() => srv.close());

    test("an agent call without a token declaring 4 MiB gets 401 and a closed connection after a few KiB: the body is never read", async () => {
      const before = await refusedCount(srv, "unauthenticated");
      const socket = await openTcp(srv.server.address.port);
      const answer = readUntilClose(socket);
      // A deeply nested JSON prefix, never finished: a 401 while it is incomplete proves nothing parsed it.
      socket.write(postHead(MANIFEST_PATH, 4 * 1024 * 1024 - 1) + "[".repeat(8 * 1024));
      const text = await answer;
      assert.match(text, /^HTTP\/1\.1 401 /);
      assert.match(text, /"code":"unauthenticated"/);
      assert.equal(await refusedCount(srv, "unauthenticated"), before + 1);
    });

    test("a wrong token is refused the same way", async () => {
      const socket = await openTcp(srv.server.address.port);
      const answer = readUntilClose(socket);
      socket.write(postHead(MANIFEST_PATH, 1024 * 1024, { "Coder-Session-Token": "00000000-0000-0000-0000-000000000000" }) + "{");
      assert.match(await answer, /^HTTP\/1\.1 401 /);
    });

    test("the control API without the admin token: 401 before the body", async () => {
      const socket = await openTcp(srv.server.address.port);
      const answer = readUntilClose(socket);
      socket.write(postHead(CONTROL_PATH, 4 * 1024 * 1024 - 1, { Authorization: `Bearer ${token}` }) + "{");
      assert.match(await answer, /^HTTP\/1\.1 401 /);
    });

    test("over HTTP/2 every unauthenticated stream is refused and reset, the connection serves on", async () => {
      const session = await h2(srv);
      try {
        const calls = Array.from({ length: 20 }, () => h2Post(session, { "content-type": "application/grpc" }, 4 * 1024 * 1024 - 1, 16 * 1024));
        for (const call of calls) {
          const { status } = await call.response;
          assert.equal(status, 200);
        }
        const grpc = session.request({ ":method": "POST", ":path": MANIFEST_PATH, "content-type": "application/grpc" });
        const headers = await new Promise<Record<string, unknown>>((resolve) => grpc.once("response", resolve));
        assert.equal(headers["grpc-status"], "16");
        grpc.close();
      } finally {
        session.close();
      }
    });

    test("with its token the same call is served", async () => {
      const res = await fetch(`${srv.url}${MANIFEST_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", "coder-session-token": token },
        body: "{}",
      });
      assert.equal(res.status, 200);
    });
  });
});

describe("timeouts and caps on the transport", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let tokens: string[];
  before(async () => {
    srv = await startTestServer(t.db, {
      headerTimeoutMs: 300,
      bodyIdleTimeoutMs: 300,
      maxRequestBytesPerConnection: 100 * 1024,
      maxRequestBytesPerAgent: 150 * 1024,
    });
    tokens = [];
    for (let i = 0; i < 3; i++) tokens.push((await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken);
  });
  after(() => srv.close());

  /** Writes `text` a byte at a time until the socket closes; resolves with how many bytes went out. */
  const drip = (socket: Socket, text: string) =>
    new Promise<number>((resolve) => {
      let sent = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return;
        socket.write(text[sent % text.length]!);
        sent++;
      }, 20);
      socket.once("close", () => {
        clearInterval(timer);
        resolve(sent);
      });
    });

  test("slowloris on the plain port: headers dripped a byte at a time are cut at the header timeout", async () => {
    const before = await refusedCount(srv, "header_timeout");
    const socket = await openTcp(srv.server.address.port);
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    const sent = await drip(socket, "GET /healthz HTTP/1.1\r\nX-Slow: " + "a".repeat(10_000));
    assert.ok(sent > 1, "the connection was active when it was cut");
    assert.equal(await refusedCount(srv, "header_timeout"), before + 1);
  });

  test("slowloris on a tunnel's HTTP/1.1 stream: cut the same way, the tunnel serves on", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[0]!);
    try {
      const stream = tunnel.session.open();
      stream.on("error", () => undefined);
      stream.resume();
      const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
      let sent = 0;
      const text = "GET /healthz HTTP/1.1\r\nX-Slow: ";
      const timer = setInterval(() => stream.write(text[sent++ % text.length]!), 20);
      await closed;
      clearInterval(timer);
      assert.ok(sent > 1);
      assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      tunnel.ws.close();
    }
  });

  test("a body that stalls is cut at the body idle timeout", async () => {
    const before = await refusedCount(srv, "body_idle");
    const socket = await openTcp(srv.server.address.port);
    const answer = readUntilClose(socket);
    socket.write(postHead(MANIFEST_PATH, 1000, { "Coder-Session-Token": tokens[1]! }) + "{");
    await answer;
    assert.equal(await refusedCount(srv, "body_idle"), before + 1);
  });

  test("a declared body past the connection's budget is refused ResourceExhausted before it is read", async () => {
    const socket = await openTcp(srv.server.address.port);
    const answer = readUntilClose(socket);
    socket.write(postHead(MANIFEST_PATH, 1024 * 1024, { "Coder-Session-Token": tokens[1]! }) + "{");
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 429 /);
    assert.match(text, /"code":"resource_exhausted"/);
  });

  test("HTTP/2 streams in flight share the connection's budget: the one past it is refused, the others go on", async () => {
    const session = await h2(srv);
    try {
      const auth = { "coder-session-token": tokens[1]! };
      const first = h2Post(session, auth, 40 * 1024, 1024);
      const second = h2Post(session, auth, 40 * 1024, 1024);
      const third = h2Post(session, auth, 40 * 1024, 1024);
      const refused = await third.response;
      assert.equal(refused.status, 429);
      assert.match(refused.body, /resource_exhausted/);
      for (const call of [first, second]) call.stream.end(Buffer.alloc(39 * 1024, 0x20));
      // Whitespace is not a manifest request: the point is that they were read to the end and answered.
      for (const call of [first, second]) assert.notEqual((await call.response).status, 429);
    } finally {
      session.close();
    }
  });

  for (const impl of ["agentgate", "node"] as const) {
    describe(`inside a tunnel, HTTP/2 served by ${impl}`, () => {
      let tunnelSrv: TestServer;
      before(async () => {
        tunnelSrv = await startTestServer(t.db, { bodyIdleTimeoutMs: 300, maxRequestBytesPerConnection: 100 * 1024, maxRequestBytesPerAgent: 150 * 1024, tunnelHttp2: impl });
      });
      after(() => tunnelSrv.close());

      /** An HTTP/2 connection on a new stream of the agent's tunnel. */
      async function h2InTunnel(token: string): Promise<{ session: ClientHttp2Session; close(): void }> {
        const tunnel = await dialRawTunnel(tunnelSrv.url, token);
        const session = http2Connect("http://agentgate.tunnel", { createConnection: () => tunnel.session.open() });
        await once(session, "connect");
        return { session, close: () => (session.close(), tunnel.ws.close()) };
      }

      test("a body that stalls is cut at the body idle timeout", async () => {
        const before = await refusedCount(tunnelSrv, "body_idle");
        const { session, close } = await h2InTunnel(tokens[0]!);
        try {
          const stalled = await h2Post(session, {}, 1000, 1).response;
          assert.equal(stalled.reset, constants.NGHTTP2_ENHANCE_YOUR_CALM);
          assert.equal(await refusedCount(tunnelSrv, "body_idle"), before + 1);
        } finally {
          close();
        }
      });

      test("a declared body past the connection's budget is refused ResourceExhausted before it is read", async () => {
        const before = await refusedCount(tunnelSrv, "connection_bytes");
        const { session, close } = await h2InTunnel(tokens[1]!);
        try {
          const refused = await h2Post(session, {}, 1024 * 1024, 1024).response;
          assert.equal(refused.status, 429);
          assert.match(refused.body, /resource_exhausted/);
          assert.equal(await refusedCount(tunnelSrv, "connection_bytes"), before + 1);
        } finally {
          close();
        }
      });

      test("streams in flight share the connection's budget: the one past it is refused, the others go on", async () => {
        const { session, close } = await h2InTunnel(tokens[2]!);
        try {
          const first = h2Post(session, {}, 40 * 1024, 1024);
          const second = h2Post(session, {}, 40 * 1024, 1024);
          const third = h2Post(session, {}, 40 * 1024, 1024);
          const refused = await third.response;
          assert.equal(refused.status, 429);
          for (const call of [first, second]) call.stream.end(Buffer.alloc(39 * 1024, 0x20));
          for (const call of [first, second]) assert.notEqual((await call.response).status, 429);
        } finally {
          close();
        }
      });
    });
  }

  test("more connections from one address than allowed: the extra one is closed on arrival", async () => {
    // A server of its own, so no connection of another test counts.
    const srv = await startTestServer(t.db, { maxConnectionsPerAddress: 40 });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = await openTcp(srv.server.address.port);
        s.on("error", () => undefined);
        sockets.push(s);
      }
      const extra = await openTcp(srv.server.address.port);
      assert.equal(await readUntilClose(extra), "");
      const refused = await srv.server.metrics.connectionsRefused.get();
      assert.ok((refused.values.find((v) => v.labels.reason === "per_address")?.value ?? 0) >= 1);
      assert.equal((await fetch(`${srv.url}/healthz`, { headers: { connection: "close" } }).catch(() => undefined)) === undefined, true, "a 41st is refused");
      for (const s of sockets.splice(0, 1)) s.destroy();
      await eventually(async () => (srv.server.connectionCount < 40 ? true : undefined), 5_000, "a slot freed");
      assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    } finally {
      for (const s of sockets) s.destroy();
      await srv.close();
    }
  });

  test("near the total limit, a connection in the reserve may dial as an agent or call the control API, nothing else", async () => {
    const srv = await startTestServer(t.db, { maxConnections: 12, connectionReserve: 11 });
    const sockets: Socket[] = [];
    try {
      const held = await openTcp(srv.server.address.port);
      held.on("error", () => undefined);
      sockets.push(held);
      await eventually(async () => (srv.server.connectionCount >= 1 ? true : undefined), 5_000, "counted");
      const metrics = await rawGet(`${srv.url}/metrics`, {}, { upgrade: false });
      assert.equal(metrics.status, 503);
      const agent = await rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": tokens[2]! });
      assert.equal(agent.upgraded, true);
      assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    } finally {
      for (const s of sockets) s.destroy();
      await srv.close();
    }
  });
});

describe("liveness needs the server's own ping answered", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let token: string;
  before(async () => {
    srv = await startTestServer(t.db, { agentUpdateIntervalMs: 100, agentInactiveTimeoutMs: 400 });
    token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
  });
  after(() => srv.close());

  /**
   * Dials a raw WebSocket, stops reading it, sends `send(ws)` every 20 ms, and waits for the
   * server to evict it for a ping timeout.
   */
  async function evictedWhileNotReading(send: (ws: WebSocket) => void, options: { autoPong?: boolean } = {}): Promise<void> {
    const ws = new WebSocket(`${srv.url.replace("http", "ws")}/api/v2/workspaceagents/me/rpc`, { headers: { "Coder-Session-Token": token }, ...options });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    ws.on("error", () => undefined);
    const evictions = async () => (await srv.server.metrics.pingTimeouts.get()).values[0]?.value ?? 0;
    const before = await evictions();
    const timer = setInterval(() => ws.readyState === ws.OPEN && send(ws), 20);
    (ws as unknown as { _socket: Socket })._socket.pause();
    try {
      await eventually(async () => ((await evictions()) > before ? true : undefined), 10_000, "ping timeout eviction");
    } finally {
      clearInterval(timer);
      ws.terminate();
    }
  }

  test("an agent that never reads but sends pongs of its own is disconnected within the inactive timeout", async () => {
    // Unsolicited pongs, and no reading: the server's pings and its data pile up unread.
    await evictedWhileNotReading((ws) => ws.pong(Buffer.from("alive")), { autoPong: false });
  });

  test("an agent that keeps sending but never reads is disconnected: a busy tunnel still gets a ping every fourth tick", async () => {
    // yamux pings (bytes the tracker sees), and no reading.
    let id = 0;
    await evictedWhileNotReading((ws) => ws.send(frameHeader(FrameType.Ping, Flag.SYN, 0, ++id)));
  });

  test("a tunnel carrying calls is pinged every fourth tick, a quiet one every tick", async () => {
    const quiet = await dialRawTunnel(srv.url, token);
    const busy = await dialRawTunnel(srv.url, token);
    let quietPings = 0;
    let busyPings = 0;
    quiet.ws.on("ping", () => quietPings++);
    busy.ws.on("ping", () => busyPings++);
    let calling = true;
    const calls = (async () => {
      while (calling) await busy.agent.getAnnouncementBanners({});
    })();
    try {
      while (quietPings < 16) await once(quiet.ws, "ping");
      // 16 ticks: the busy tunnel's read proofs, 4 (one tick of phase either way), never a ping a tick.
      assert.ok(busyPings >= 3 && busyPings <= 6, `busy tunnel pinged ${busyPings} times while the quiet one was pinged 16`);
    } finally {
      calling = false;
      await calls;
      quiet.ws.close();
      busy.ws.close();
    }
  });

  test("an agent that answers the pings stays connected", async () => {
    const tunnel = await dialRawTunnel(srv.url, token);
    try {
      const pings = async () => (await srv.server.metrics.pings.get()).values[0]?.value ?? 0;
      const start = await pings();
      // Past the inactive timeout in pings sent: the tunnel must still serve.
      await eventually(async () => ((await pings()) >= start + 6 ? true : undefined), 10_000, "six pings");
      assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      tunnel.ws.close();
    }
  });
});

describe("admission under overload", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let tokens: string[];
  before(async () => {
    srv = await startTestServer(t.db, { overloadLagMs: 20 });
    tokens = [];
    for (let i = 0; i < 2; i++) tokens.push((await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken);
  });
  after(() => srv.close());

  test("while the event loop lags, new dials get 503 with Retry-After; a connected agent keeps working", async () => {
    const connected = await dialRawTunnel(srv.url, tokens[0]!);
    try {
      // Saturate the process for over a second, as a flood of work would: every turn of its event
      // loop takes 45 ms, so the median delay passes the bound (a single long pause would not).
      const until = Date.now() + 1_500;
      await new Promise<void>((resolve) => {
        const busyTurn = () => {
          const end = Date.now() + 45;
          while (Date.now() < end);
          if (Date.now() < until) setImmediate(busyTurn);
          else resolve();
        };
        busyTurn();
      });
      const refused = await rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": tokens[1]! });
      assert.equal(refused.status, 503);
      assert.equal(refused.headers["retry-after"], "2");
      assert.equal(refused.upgraded, false);
      assert.equal((await connected.agent.getServiceBanner({})).enabled, false);
      const metric = await srv.server.metrics.overloadRefusals.get();
      assert.ok((metric.values.find((v) => v.labels.reason === "event_loop_lag")?.value ?? 0) >= 1);
      // Once the lag is gone, dials are admitted again.
      await eventually(async () => {
        const r = await rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": tokens[1]! });
        return r.upgraded ? true : undefined;
      }, 10_000, "admitted again");
    } finally {
      connected.ws.close();
    }
  });
});

describe("admission with too many dials pending", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let token: string;
  before(async () => {
    srv = await startTestServer(t.db, { maxPendingDials: 1 });
    token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
  });
  after(() => srv.close());

  test("a herd of dials at once: past the bound they get 503 with Retry-After, none fails otherwise", async () => {
    const answers = await Promise.all(Array.from({ length: 30 }, () => rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": token })));
    const statuses = answers.map((a) => (a.upgraded ? 101 : a.status));
    assert.ok(statuses.every((s) => s === 101 || s === 503), `statuses: ${statuses.join(",")}`);
    assert.ok(statuses.includes(503), "some dial was turned away");
    for (const a of answers.filter((x) => x.status === 503)) assert.equal(a.headers["retry-after"], "2");
  });
});

describe("admission of a herd within the bound", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let token: string;
  before(async () => {
    srv = await startTestServer(t.db);
    token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
  });
  after(() => srv.close());

  test("150 dials at once wait their turn in the queue: every one is upgraded, none refused", async () => {
    const answers = await Promise.all(Array.from({ length: 150 }, () => rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": token })));
    assert.deepEqual(answers.filter((a) => !a.upgraded).map((a) => a.status), []);
    const metric = await srv.server.metrics.overloadRefusals.get();
    assert.deepEqual(metric.values.filter((v) => v.value > 0), []);
  });
});
