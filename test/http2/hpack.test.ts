import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as connectHttp2, constants } from "node:http2";
import { createServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import { encodeHeaders } from "../../src/http2/hpack-encoder.js";
import { HpackDecoder, HpackError } from "../../src/http2/hpack-decoder.js";
import { CLIENT_PREFACE, FRAME_HEADER_BYTES, FrameFlag, FrameType, frame, readFrameHeader, settingsPayload } from "../../src/http2/frames.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const REQUEST_1 = [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]];
const REQUEST_2 = [...REQUEST_1, ["cache-control", "no-cache"]];
const REQUEST_3 = [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]];

describe("HPACK decoder: RFC 7541 Appendix C", () => {
  it("C.3: three requests without Huffman coding share one dynamic table", () => {
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")), REQUEST_1);
    assert.equal(decoder.dynamicTableBytes, 57);
    assert.deepEqual(decoder.decode(hex("8286 84be 5808 6e6f 2d63 6163 6865")), REQUEST_2);
    assert.equal(decoder.dynamicTableBytes, 110);
    assert.deepEqual(decoder.decode(hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65")), REQUEST_3);
    assert.equal(decoder.dynamicTableBytes, 164);
  });

  it("C.4: the same requests with Huffman coding", () => {
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")), REQUEST_1);
    assert.deepEqual(decoder.decode(hex("8286 84be 5886 a8eb 1064 9cbf")), REQUEST_2);
    assert.deepEqual(decoder.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")), REQUEST_3);
    assert.equal(decoder.dynamicTableBytes, 164);
  });

  it("malformed blocks throw HpackError: an index past the tables, a string past the block, bad padding, a size update past the limit or after a field, a list over its bound", () => {
    const cases: [string, Buffer, HpackDecoder?][] = [
      ["index 70 with an empty dynamic table", hex("c6")],
      ["index 0", hex("80")],
      ["string longer than the block", hex("400a 6375")],
      ["integer cut short", hex("ff")],
      ["huffman padding of zeros", hex("4081 00 00")],
      ["size update past the advertised limit", hex("3fe21f")],
      ["size update after a field", hex("82 20")],
      ["header list over 100 bytes", hex("400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65 be be"), new HpackDecoder(4096, 100)],
    ];
    for (const [what, block, decoder] of cases) assert.throws(() => (decoder ?? new HpackDecoder()).decode(block), HpackError, what);
  });

  it("an entry larger than the table empties it; a size update to 0 evicts everything", () => {
    const decoder = new HpackDecoder(64);
    decoder.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65")); // 54 bytes: fits
    assert.equal(decoder.dynamicTableBytes, 54);
    decoder.decode(Buffer.concat([hex("40 0b"), Buffer.from("custom-key2"), hex("0d"), Buffer.from("custom-value2")])); // 56 bytes: evicts the first
    assert.equal(decoder.dynamicTableBytes, 56);
    decoder.decode(hex("20"));
    assert.equal(decoder.dynamicTableBytes, 0);
    assert.throws(() => decoder.decode(hex("be")), HpackError);
  });
});

describe("HPACK against nghttp2 (node:http2's client)", () => {
  it("decodes what node's client sends (Huffman, dynamic table across requests) and node's client reads what the encoder writes", async () => {
    const decoder = new HpackDecoder();
    const received: [string, string][][] = [];
    const server = createServer((socket: Socket) => {
      let buffered = Buffer.alloc(0);
      let prefaceSeen = false;
      socket.write(frame(FrameType.Settings, 0, 0, settingsPayload([])));
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (!prefaceSeen) {
          if (buffered.length < CLIENT_PREFACE.length) return;
          assert.ok(buffered.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE));
          buffered = buffered.subarray(CLIENT_PREFACE.length);
          prefaceSeen = true;
        }
        while (buffered.length >= FRAME_HEADER_BYTES) {
          const header = readFrameHeader(buffered, 0);
          if (buffered.length < FRAME_HEADER_BYTES + header.length) break;
          const payload = buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + header.length);
          buffered = buffered.subarray(FRAME_HEADER_BYTES + header.length);
          if (header.type === FrameType.Settings && (header.flags & FrameFlag.Ack) === 0) socket.write(frame(FrameType.Settings, FrameFlag.Ack, 0));
          if (header.type !== FrameType.Headers) continue;
          assert.equal(header.flags & (FrameFlag.Padded | FrameFlag.Priority), 0);
          assert.ok(header.flags & FrameFlag.EndHeaders);
          const headers = decoder.decode(payload);
          received.push(headers);
          const reply = encodeHeaders([[":status", "200"], ["content-type", "application/grpc"], ["x-echo", headers.find(([n]) => n === "x-request")?.[1] ?? ""], ["grpc-status", "0"]]);
          socket.write(frame(FrameType.Headers, FrameFlag.EndHeaders | FrameFlag.EndStream, header.streamId, reply));
        }
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as { port: number };
    const client = connectHttp2(`http://127.0.0.1:${port}`);
    try {
      for (let i = 0; i < 3; i++) {
        const value = `request ${i} ${"é".repeat(i)} / with text the Huffman code shortens`;
        const req = client.request({ [constants.HTTP2_HEADER_PATH]: "/coder.agent.v2.Agent/GetManifest", [constants.HTTP2_HEADER_METHOD]: "POST", "content-type": "application/grpc", "x-request": value, "x-binary-bin": Buffer.from([0, 255, 1]).toString("base64") }, { endStream: true });
        const [response] = (await once(req, "response")) as [Record<string, string | number>];
        req.resume();
        await once(req, "close");
        assert.equal(response[":status"], 200);
        assert.equal(response["content-type"], "application/grpc");
        assert.equal(response["x-echo"], value, "node reads the encoder's octets as it wrote them (one per char)");
        const got = new Map(received[i]);
        assert.equal(got.get(":path"), "/coder.agent.v2.Agent/GetManifest");
        assert.equal(got.get(":method"), "POST");
        assert.equal(got.get("x-request"), value);
        assert.equal(got.get("x-binary-bin"), Buffer.from([0, 255, 1]).toString("base64"));
      }
      assert.ok(decoder.dynamicTableBytes > 0, "nghttp2 indexed fields into the dynamic table");
    } finally {
      client.close();
      server.close();
    }
  });
});
