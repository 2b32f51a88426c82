/**
 * yamux benchmark: throughput over a real WebSocket pair on 127.0.0.1 and heap per idle session
 * and per open stream, for raw WebSocket (the ceiling), agentgate's src/yamux,
 * @chainsafe/libp2p-yamux and yamux-js, all in one run. Prints a table.
 *
 *   node --import tsx bench/yamux.ts            (BENCH_MB=32 BENCH_SESSIONS=300 BENCH_STREAMS=500)
 *
 * Each transfer is capped at BENCH_CAP_MS; a contender that does not finish in time is shown
 * with the rate it reached and "(capped)". Rates are the best of BENCH_REPEATS runs, taken in
 * turns across contenders, because the machine is shared and noise only ever slows a run down.
 */
import { once } from "node:events";
import { Duplex, type Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { WebSocket, WebSocketServer } from "ws";
import { yamux as libp2pYamux } from "@chainsafe/libp2p-yamux";
import { AbstractMessageStream, type SendResult } from "@libp2p/utils";
import { defaultLogger } from "@libp2p/logger";
import yamuxJs from "yamux-js";
import { Session } from "../src/yamux/index.js";

const MB = 1024 * 1024;
const TOTAL_BYTES = Number(process.env.BENCH_MB ?? 32) * MB;
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 300);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 500);
const CAP_MS = Number(process.env.BENCH_CAP_MS ?? 2000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
/** Bytes a sender may leave in the WebSocket's buffer before it waits: the same for everyone. */
const WS_HIGH_WATER_MARK = MB;

// libp2p-yamux 8 uses Promise.withResolvers, which Node 20 lacks.
(Promise as unknown as { withResolvers?: unknown }).withResolvers ??= function withResolvers<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
};

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

// ---- WebSocket plumbing ----

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 64 * MB });
await once(wss, "listening");
const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;

async function wsPair(): Promise<[WebSocket, WebSocket]> {
  const accepted = once(wss, "connection") as Promise<[WebSocket]>;
  const client = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * MB });
  const [[server]] = await Promise.all([accepted, once(client, "open")]);
  return [client, server];
}

/** Sends on a WebSocket, calling `done` at once while its buffer has room, else when it drains. */
function wsSend(ws: WebSocket, data: Uint8Array, done: () => void): void {
  let waited = false;
  ws.send(data, () => {
    if (waited && ws.bufferedAmount < WS_HIGH_WATER_MARK) {
      waited = false;
      done();
    }
  });
  if (ws.bufferedAmount < WS_HIGH_WATER_MARK) done();
  else waited = true;
}

/** WebSocket as a Node byte Duplex (what src/tunnel will provide; minimal here). */
function wsDuplex(ws: WebSocket): Duplex {
  const duplex = new Duplex({
    write: (chunk: Buffer, _e, callback) => wsSend(ws, chunk, () => callback()),
    read: () => ws.isPaused && ws.resume(),
    final: (callback) => {
      ws.close();
      callback();
    },
    destroy: (error, callback) => {
      ws.terminate();
      callback(error);
    },
  });
  ws.on("message", (data: Buffer) => {
    if (!duplex.push(data)) ws.pause();
  });
  ws.on("close", () => duplex.push(null));
  return duplex;
}

/** WebSocket as a libp2p MessageStream. */
class WsMessageStream extends AbstractMessageStream {
  private readonly ws: WebSocket;
  private waiting = false;

  constructor(ws: WebSocket, direction: "inbound" | "outbound") {
    super({ log: defaultLogger().forComponent("bench:ws"), direction });
    this.ws = ws;
    ws.on("message", (data: Buffer) => this.onData(data));
    ws.on("close", () => this.onTransportClosed());
  }

  sendData(data: Parameters<AbstractMessageStream["sendData"]>[0]): SendResult {
    const bytes = data.subarray();
    let canSendMore = true;
    wsSend(this.ws, bytes, () => {
      if (this.waiting) {
        this.waiting = false;
        this.safeDispatchEvent("drain");
      }
    });
    if (this.ws.bufferedAmount >= WS_HIGH_WATER_MARK) {
      canSendMore = false;
      this.waiting = true;
    }
    return { sentBytes: bytes.byteLength, canSendMore };
  }
  sendReset(): void {
    this.ws.terminate();
  }
  sendPause(): void {
    this.ws.pause();
  }
  sendResume(): void {
    this.ws.resume();
  }
  async close(): Promise<void> {
    this.ws.close();
  }
}

// ---- contenders ----

/** Calls `onBytes` for every byte the server side receives on any stream. */
type Receiver = (onBytes: (n: number) => void) => void;

interface Muxed {
  /** Opens a stream on the client side; resolves with a function that sends `bytes` on it. */
  open(): Promise<(bytes: number) => Promise<void>>;
  receive: Receiver;
}

interface Contender {
  name: string;
  /** Client and server muxers over one WebSocket pair. */
  connect(client: WebSocket, server: WebSocket): Muxed;
  /** A server-side muxer over a WebSocket, idle; returns something to keep alive. */
  idle(server: WebSocket): unknown;
}

async function writeAll(stream: Writable, bytes: number): Promise<void> {
  for (let sent = 0; sent < bytes; sent += CHUNK.length) {
    if (!stream.write(bytes - sent < CHUNK.length ? CHUNK.subarray(0, bytes - sent) : CHUNK)) await once(stream, "drain");
  }
}

const ours: Contender = {
  name: "agentgate src/yamux",
  connect(clientWs, serverWs) {
    const client = new Session(wsDuplex(clientWs), { role: "client" });
    const server = new Session(wsDuplex(serverWs), { role: "server" });
    return {
      open: async () => {
        const stream = client.open().on("error", () => {});
        return (bytes) => writeAll(stream, bytes);
      },
      receive: (onBytes) =>
        server.on("stream", (s: Duplex) => s.on("error", () => {}).on("data", (c: Buffer) => onBytes(c.length))),
    };
  },
  idle: (serverWs) => new Session(wsDuplex(serverWs), { role: "server" }),
};

const libp2p: Contender = {
  name: "@chainsafe/libp2p-yamux",
  connect(clientWs, serverWs) {
    const config = { enableKeepAlive: false };
    const client = libp2pYamux(config)().createStreamMuxer(new WsMessageStream(clientWs, "outbound"));
    const server = libp2pYamux(config)().createStreamMuxer(new WsMessageStream(serverWs, "inbound"));
    return {
      open: async () => {
        const stream = await client.createStream();
        return async (bytes) => {
          for (let sent = 0; sent < bytes; sent += CHUNK.length) {
            if (!stream.send(bytes - sent < CHUNK.length ? CHUNK.subarray(0, bytes - sent) : CHUNK)) await stream.onDrain();
          }
        };
      },
      receive: (onBytes) =>
        server.addEventListener("stream", (event) =>
          event.detail.addEventListener("message", (m) => onBytes(m.data.byteLength)),
        ),
    };
  },
  idle: (serverWs) => libp2pYamux({ enableKeepAlive: false })().createStreamMuxer(new WsMessageStream(serverWs, "inbound")),
};

const yamuxJsContender: Contender = {
  name: "yamux-js",
  connect(clientWs, serverWs) {
    const config = { enableKeepAlive: false };
    const client = new yamuxJs.Client(config);
    const clientDuplex = wsDuplex(clientWs);
    clientDuplex.pipe(client).pipe(clientDuplex);
    let onStream: (s: Duplex) => void = () => {};
    const server = new yamuxJs.Server((s: Duplex) => onStream(s), config);
    const serverDuplex = wsDuplex(serverWs);
    serverDuplex.pipe(server).pipe(serverDuplex);
    return {
      open: async () => {
        const stream = client.open().on("error", () => {});
        return (bytes) => writeAll(stream, bytes);
      },
      receive: (onBytes) => (onStream = (s) => s.on("error", () => {}).on("data", (c: Buffer) => onBytes(c.length))),
    };
  },
  idle(serverWs) {
    const server = new yamuxJs.Server(() => {}, { enableKeepAlive: false });
    const duplex = wsDuplex(serverWs);
    duplex.pipe(server).pipe(duplex);
    return server;
  },
};

// ---- measurements ----

interface Rate {
  mbps: number;
  capped: boolean;
  /** Process CPU (both ends, ws included) per MiB moved: what a saturated ceiling hides. */
  cpuMsPerMiB: number;
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

/** Sends TOTAL_BYTES client → server split over `streams` streams; MB/s until the server has it all. */
async function throughput(contender: Contender, streams: number): Promise<Rate> {
  const [clientWs, serverWs] = await wsPair();
  const muxed = contender.connect(clientWs, serverWs);
  let received = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => (finish = resolve));
  muxed.receive((n) => {
    received += n;
    if (received >= TOTAL_BYTES) finish();
  });
  const started = performance.now();
  const cpu = process.cpuUsage();
  const senders = await Promise.all(Array.from({ length: streams }, () => muxed.open()));
  void Promise.all(senders.map((send) => send(TOTAL_BYTES / streams))).catch(() => {});
  const cap = setTimeout(finish, CAP_MS);
  await done;
  clearTimeout(cap);
  const seconds = (performance.now() - started) / 1000;
  const cpuMsPerMiB = cpuMs(cpu) / (received / MB);
  clientWs.terminate();
  serverWs.terminate();
  return { mbps: received / MB / seconds, capped: received < TOTAL_BYTES, cpuMsPerMiB };
}

async function rawThroughput(): Promise<Rate> {
  const [clientWs, serverWs] = await wsPair();
  let received = 0;
  const done = new Promise<void>((resolve) =>
    serverWs.on("message", (data: Buffer) => {
      received += data.length;
      if (received >= TOTAL_BYTES) resolve();
    }),
  );
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let sent = 0; sent < TOTAL_BYTES; sent += CHUNK.length) {
    await new Promise<void>((resolve) => wsSend(clientWs, CHUNK, resolve));
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  const cpuMsPerMiB = cpuMs(cpu) / (received / MB);
  clientWs.terminate();
  serverWs.terminate();
  return { mbps: received / MB / seconds, capped: false, cpuMsPerMiB };
}

function heap(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** Heap (and external) bytes per idle server-side session over an open WebSocket. */
async function perSession(contender: Contender): Promise<number> {
  const pairs = [];
  for (let i = 0; i < SESSIONS; i++) pairs.push(await wsPair());
  const before = heap();
  const sessions = pairs.map(([, server]) => contender.idle(server));
  const after = heap();
  for (const [c, s] of pairs) {
    c.terminate();
    s.terminate();
  }
  void sessions;
  return (after - before) / SESSIONS;
}

/** Heap bytes per open stream, both ends counted (one byte written on each so the server has it). */
async function perStream(contender: Contender): Promise<number> {
  const [clientWs, serverWs] = await wsPair();
  const muxed = contender.connect(clientWs, serverWs);
  await (await muxed.open())(1); // warm up: first stream allocates shared state
  let received = 0;
  let all: () => void = () => {};
  const done = new Promise<void>((resolve) => (all = resolve));
  muxed.receive(() => ++received >= STREAMS + 1 && all());
  received = 1;
  const before = heap();
  const senders = [];
  for (let i = 0; i < STREAMS; i++) senders.push(await muxed.open());
  await Promise.all(senders.map((send) => send(1)));
  const cap = setTimeout(all, CAP_MS);
  await done;
  clearTimeout(cap);
  const after = heap();
  const complete = received >= STREAMS + 1;
  clientWs.terminate();
  serverWs.terminate();
  return complete ? (after - before) / STREAMS : Number.NaN;
}

const contenders = [ours, libp2p, yamuxJsContender];
const best = (a: Rate | undefined, b: Rate): Rate => (a === undefined || b.mbps > a.mbps ? b : a);
let raw: Rate | undefined;
const rates = contenders.map(() => ({ one: undefined as Rate | undefined, eight: undefined as Rate | undefined }));
for (let run = 0; run < REPEATS; run++) {
  raw = best(raw, await rawThroughput());
  for (const [i, contender] of contenders.entries()) {
    rates[i]!.one = best(rates[i]!.one, await throughput(contender, 1));
    rates[i]!.eight = best(rates[i]!.eight, await throughput(contender, 8));
  }
}
const rows: { name: string; one: Rate; eight: Rate; session: number; stream: number }[] = [];
for (const [i, contender] of contenders.entries()) {
  rows.push({
    name: contender.name,
    one: rates[i]!.one!,
    eight: rates[i]!.eight!,
    session: await perSession(contender),
    stream: await perStream(contender),
  });
}

const fmtRate = (r: Rate): string => `${r.mbps.toFixed(0)} MB/s${r.capped ? " (capped)" : ""}`;
const fmtCpu = (r: Rate): string => `${r.cpuMsPerMiB.toFixed(2)}`;
const fmtKB = (bytes: number): string => (Number.isNaN(bytes) ? "n/a (hung)" : `${(bytes / 1024).toFixed(1)} KB`);
const table = [
  ["", "1 stream", "8 streams", "× raw (1)", "CPU ms/MiB (1)", "CPU ms/MiB (8)", "heap / idle session", "heap / open stream"],
  ["raw WebSocket (ceiling)", fmtRate(raw!), "—", "1.00", fmtCpu(raw!), "—", "—", "—"],
  ...rows.map((r) => [
    r.name,
    fmtRate(r.one),
    fmtRate(r.eight),
    (r.one.mbps / raw!.mbps).toFixed(2),
    fmtCpu(r.one),
    fmtCpu(r.eight),
    fmtKB(r.session),
    fmtKB(r.stream),
  ]),
];
const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
console.log(`yamux bench: best of ${REPEATS}, ${TOTAL_BYTES / MB} MiB per transfer over ws on 127.0.0.1, ${SESSIONS} idle sessions, ${STREAMS} streams`);
for (const row of table) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  "));
const [mine, lib] = rows;
console.log(
  `src/yamux vs raw: ${(mine!.one.mbps / raw!.mbps).toFixed(2)}×; vs libp2p-yamux: ${(mine!.one.mbps / lib!.one.mbps).toFixed(2)}× (1 stream), ` +
    `${(mine!.eight.mbps / lib!.eight.mbps).toFixed(2)}× (8 streams); CPU per MiB vs libp2p-yamux: ` +
    `${(mine!.one.cpuMsPerMiB / lib!.one.cpuMsPerMiB).toFixed(2)}× (1), ${(mine!.eight.cpuMsPerMiB / lib!.eight.cpuMsPerMiB).toFixed(2)}× (8); session memory vs libp2p: ${(mine!.session / lib!.session).toFixed(2)}×, vs yamux-js: ${(mine!.session / rows[2]!.session).toFixed(2)}×`,
);
wss.close();
process.exit(0);
