/** The agent-like client's own rules, against a raw server. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DrpcClientConnection, DrpcErrorCode, type DrpcError } from "../../src/drpc/index.js";
import { hex, rawPeer } from "./support.js";

const METHOD = "/test.v1.Echo/Say";

describe("DRPC client connection", () => {
  it("aborting the caller's signal cancels the call and destroys the transport", async () => {
    const peer = rawPeer();
    const abort = new AbortController();
    const call = new DrpcClientConnection(peer.local).unary(METHOD, Buffer.from("x"), { signal: abort.signal });
    await peer.receivedBytes(1);
    abort.abort();
    await assert.rejects(call, (err: DrpcError) => err.code === DrpcErrorCode.Canceled);
    await peer.closed;
  });

  it("a signal already aborted refuses the call before anything is written", () => {
    const peer = rawPeer();
    const client = new DrpcClientConnection(peer.local);
    assert.throws(() => client.open(METHOD, { signal: AbortSignal.abort() }), (err: DrpcError) => err.code === DrpcErrorCode.Canceled);
  });

  it("a unary call the server ends with CloseSend alone fails with EOF", async () => {
    const peer = rawPeer();
    const call = new DrpcClientConnection(peer.local).unary(METHOD, Buffer.from("x"));
    await peer.receivedBytes(1);
    peer.raw.write(hex("0d 01 01 00"));
    await assert.rejects(call, (err: DrpcError) => err.code === DrpcErrorCode.MissingReply);
  });

  it("the server's FIN fails the call in progress and no new call can start", async () => {
    const peer = rawPeer();
    const client = new DrpcClientConnection(peer.local);
    const call = client.unary(METHOD, Buffer.from("x"));
    await peer.receivedBytes(1);
    peer.raw.end();
    await assert.rejects(call, (err: DrpcError) => err.code === DrpcErrorCode.TransportClosed);
    assert.throws(() => client.open(METHOD), (err: DrpcError) => err.code === DrpcErrorCode.TransportClosed);
  });

  it("a request over 4 MiB is refused before anything is written", async () => {
    const peer = rawPeer();
    await assert.rejects(new DrpcClientConnection(peer.local).unary(METHOD, Buffer.alloc(4 * 1024 * 1024 + 1)), (err: DrpcError) => err.code === DrpcErrorCode.MessageTooLarge);
    assert.equal(peer.local.stats.writes, 0);
  });

  it("a second receive while one is pending is a usage error", async () => {
    const peer = rawPeer();
    const call = new DrpcClientConnection(peer.local).open(METHOD);
    const first = call.receive();
    await assert.rejects(call.receive(), /another receive\(\) is pending/);
    peer.raw.write(hex("05 01 01 01 61"));
    assert.deepEqual(Buffer.from((await first)!), Buffer.from("a"));
  });
});
