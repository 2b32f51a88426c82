/**
 * Telling a tunnel stream's protocol from its first bytes, and giving those bytes back intact.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, test } from "node:test";
import { classifyHttp, classifyTunnelStream } from "../../src/tunnel/stream-protocols.js";
import { sniffStream } from "../../src/tunnel/stream-sniffer.js";
import { duplexPair } from "../yamux/helpers.js";

const bytes = (...b: number[]) => Buffer.from(b);

describe("classifyTunnelStream", () => {
  test("DRPC control bytes: Invoke, InvokeMetadata, any kind 1..7 with or without done and the control flag", () => {
    for (const b of [0x03, 0x0f, 0x02, 0x05, 0x0d, 0x82, 0x89, 0x8f]) assert.equal(classifyTunnelStream(bytes(b)), "drpc", b.toString(16));
  });

  test("HTTP/2 needs the preface's first 14 bytes; POST, PUT and PATCH are HTTP/1.1 as soon as they differ", () => {
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    for (let n = 1; n < 14; n++) assert.equal(classifyTunnelStream(preface.subarray(0, n)), undefined, `${n} bytes`);
    assert.equal(classifyTunnelStream(preface.subarray(0, 14)), "http2");
    assert.equal(classifyTunnelStream(Buffer.from("P")), undefined);
    for (const method of ["POST", "PUT", "PATCH"]) assert.equal(classifyTunnelStream(Buffer.from(method)), "http1", method);
    for (const method of ["GET /", "HEAD /", "OPTIONS *"]) assert.equal(classifyTunnelStream(Buffer.from(method)), "http1", method);
  });

  test("anything else is refused: NUL, a kind beyond InvokeMetadata, lowercase, TLS", () => {
    for (const b of [0x00, 0x01, 0x10, 0x7f, 0x80, 0x90, 0x61, 0x16]) assert.equal(classifyTunnelStream(bytes(b)), null, b.toString(16));
  });

  test("the plain port's classifier knows only HTTP: what is not the preface is HTTP/1.1", () => {
    assert.equal(classifyHttp(bytes(0x03)), "http1");
    assert.equal(classifyHttp(Buffer.from("PRI * HTTP/2.0")), "http2");
  });
});

describe("sniffStream", () => {
  test("a first packet split into 1-byte reads: the protocol is chosen once, and every byte is given back", async () => {
    const [ours, theirs] = duplexPair({ chunkSize: 1 });
    const chosen: string[] = [];
    const handed = new Promise<void>((resolve) =>
      sniffStream(ours, classifyTunnelStream, {}, (protocol) => {
        chosen.push(String(protocol));
        resolve();
      }),
    );
    const sent = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    theirs.write(sent);
    await handed;
    ours.resume();
    const received: Buffer[] = [];
    ours.on("data", (c: Buffer) => received.push(c));
    while (Buffer.concat(received).length < sent.length) await once(ours, "data");
    assert.deepEqual(chosen, ["http2"]);
    assert.deepEqual(Buffer.concat(received), sent);
  });

  test("with no timeout an empty stream stays open; with one it is destroyed", async () => {
    const [idle] = duplexPair();
    sniffStream(idle, classifyTunnelStream, {}, () => assert.fail("nothing was sent"));
    const [timed] = duplexPair();
    sniffStream(timed, classifyTunnelStream, { timeoutMs: 10 }, () => assert.fail("nothing was sent"));
    // The sniffer's timer is unref'd (it must not hold a server's exit): hold the loop here.
    const hold = setTimeout(() => undefined, 10_000);
    await once(timed, "close");
    clearTimeout(hold);
    assert.equal(idle.destroyed, false);
    idle.destroy();
  });

  test("a refused first byte destroys the stream without an error event", async () => {
    const [ours, theirs] = duplexPair();
    ours.on("error", () => assert.fail("no error is emitted"));
    sniffStream(ours, classifyTunnelStream, {}, () => assert.fail("refused"));
    theirs.write(bytes(0x00, 0x01));
    await once(ours, "close");
  });
});
