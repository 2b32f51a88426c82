import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import { describe, it } from "node:test";
import type { Stream } from "../../src/yamux/index.js";
import { destroyAll, pattern, sessionPair } from "./helpers.js";

describe("HTTP over yamux streams", () => {
  it("node:http2 serves requests on an accepted stream, as the tunnel will (emit 'connection')", async () => {
    const pair = sessionPair();
    const server = http2.createServer();
    server.on("stream", (h2stream, headers) => {
      const chunks: Buffer[] = [];
      h2stream.on("data", (c: Buffer) => chunks.push(c));
      h2stream.on("end", () => {
        h2stream.respond({ ":status": 200, "x-path": String(headers[":path"]) });
        h2stream.end(Buffer.concat(chunks));
      });
    });
    pair.server.on("stream", (stream: Stream) => server.emit("connection", stream));
    const client = http2.connect("http://yamux", { createConnection: () => pair.client.open() });
    const request = async (path: string, body: Buffer): Promise<[string, Buffer]> => {
      const req = client.request({ ":method": "POST", ":path": path });
      req.end(body);
      const chunks: Buffer[] = [];
      let tag = "";
      req.on("response", (headers) => (tag = String(headers["x-path"])));
      for await (const chunk of req) chunks.push(chunk as Buffer);
      return [tag, Buffer.concat(chunks)];
    };
    const big = pattern(1024 * 1024);
    const results = await Promise.all([request("/a", Buffer.from("small")), request("/b", big), request("/c", Buffer.alloc(0))]);
    assert.deepEqual(results.map((r) => r[0]), ["/a", "/b", "/c"]);
    assert.equal(results[0][1].toString(), "small");
    assert.ok(results[1][1].equals(big));
    assert.equal(results[2][1].length, 0);
    await new Promise<void>((resolve) => client.close(() => resolve()));
    destroyAll(pair.client, pair.server);
  });

  it("node:http (HTTP/1.1) serves a request on an accepted stream", async () => {
    const pair = sessionPair();
    const server = http.createServer((req, res) => {
      res.setHeader("x-method", req.method ?? "");
      req.pipe(res);
    });
    pair.server.on("stream", (stream: Stream) => server.emit("connection", stream));
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { method: "POST", path: "/echo", createConnection: () => pair.client.open() as never, headers: { connection: "close" } },
        (res) => {
          assert.equal(res.headers["x-method"], "POST");
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
      req.end("ping over http/1.1");
    });
    assert.equal(body, "ping over http/1.1");
    destroyAll(pair.client, pair.server);
  });
});
