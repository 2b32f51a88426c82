import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { webSocketDuplex } from "../../src/tunnel/websocket-duplex.js";
import { Session, type Stream } from "../../src/yamux/index.js";
import { pattern, readAll } from "../yamux/helpers.js";

/** A peer that reads WebSocket messages of at most 16 KiB, as a strict agent might. */
const SMALL_LIMIT = 16 * 1024;
const FOUR_MIB = 4 * 1024 * 1024;

describe("yamux over a WebSocket whose peer reads small messages", () => {
  let wss: WebSocketServer;
  let url: string;
  before(async () => {
    wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: SMALL_LIMIT, perMessageDeflate: false });
    await once(wss, "listening");
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => wss.close(() => resolve())));

  it("a 4 MiB write on one stream arrives whole and every message either way stays within the limit", async () => {
    const sizes = { toServer: [] as number[], toClient: [] as number[] };
    const closes: number[] = [];
    const accepted = new Promise<WebSocket>((resolve) => wss.once("connection", resolve));
    const clientWs = new WebSocket(url, { maxPayload: SMALL_LIMIT, perMessageDeflate: false });
    const client = new Session(webSocketDuplex(clientWs), { role: "client", maxMessageBytes: SMALL_LIMIT });
    const serverWs = await accepted;
    await once(clientWs, "open");
    serverWs.on("message", (data: Buffer) => sizes.toServer.push(data.length));
    clientWs.on("message", (data: Buffer) => sizes.toClient.push(data.length));
    for (const ws of [serverWs, clientWs]) ws.on("close", (code) => closes.push(code));
    const server = new Session(webSocketDuplex(serverWs), { role: "server", maxMessageBytes: SMALL_LIMIT });
    server.on("stream", (stream: Stream) => stream.pipe(stream));
    try {
      const payload = pattern(FOUR_MIB);
      const stream = client.open();
      const echoed = readAll(stream);
      stream.end(payload);
      assert.ok((await echoed).equals(payload), "the echo is the 4 MiB that were written");
      assert.deepEqual(closes, [], "neither side closed the WebSocket (1009 would mean a message over the limit)");
      for (const [direction, list] of Object.entries(sizes)) {
        assert.ok(list.length > 0, `messages went ${direction}`);
        assert.ok(Math.max(...list) <= SMALL_LIMIT, `largest message ${direction}: ${Math.max(...list)} bytes`);
      }
    } finally {
      client.destroy();
      server.destroy();
      clientWs.terminate();
    }
  });
});
