/** The RPC core alone: every method kind, the lazy handler context, the observer, the limits. */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { create, createFileRegistry, fromBinary, toBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, file_google_protobuf_wrappers, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextKey, createContextValues, type HandlerContext } from "@connectrpc/connect";
import { RpcCore, unknownMethodError, type RpcCallInit, type RpcMessageStream, type RpcObserver, type RpcRegistration } from "../../src/rpc/index.js";

/** A service with one method of each kind (the Agent and Tailnet services have no client stream). */
const Echo: DescService = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "test/v1/echo.proto",
    package: "test.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    service: [
      {
        name: "Echo",
        method: [
          { name: "Say", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue" },
          { name: "Count", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue", serverStreaming: true },
          { name: "Collect", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue", clientStreaming: true },
          { name: "Chat", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue", clientStreaming: true, serverStreaming: true },
          { name: "Missing", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.StringValue" },
        ],
      },
    ],
  }),
  (name) => (name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined),
).getService("test.v1.Echo")!;

type Text = { value: string };
const callerKey = createContextKey<string>("nobody");
let lastContext: HandlerContext | undefined;

const echo = {
  say(req: Text, ctx: HandlerContext) {
    lastContext = ctx;
    if (req.value === "fail") throw new ConnectError("asked to fail", Code.FailedPrecondition);
    if (req.value === "crash") throw new Error("plain error");
    if (req.value === "big") return { value: "x".repeat(2000) };
    if (req.value === "who") return { value: ctx.values.get(callerKey) };
    if (req.value === "header") return { value: ctx.requestHeader.get("x-k") ?? "" };
    if (req.value === "signal") return { value: String(ctx.signal.aborted) };
    return { value: `said ${req.value}` };
  },
  async *count(req: Text) {
    for (let i = 1; i <= Number(req.value); i++) yield { value: String(i) };
  },
  async collect(requests: AsyncIterable<Text>) {
    const all: string[] = [];
    for await (const req of requests) all.push(req.value);
    return { value: all.join(",") };
  },
  async *chat(requests: AsyncIterable<Text>) {
    for await (const req of requests) yield { value: `re:${req.value}` };
  },
  async wait(_req: Text, ctx: HandlerContext) {
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
    throw ctx.signal.reason;
  },
};

/** The descriptor is built at run time, so its message types are not known to the compiler. */
const echoImpl = echo as unknown as RpcRegistration[1];

const text = (value: string) => toBinary(StringValueSchema, create(StringValueSchema, { value }));
const read = (bytes: Uint8Array) => fromBinary(StringValueSchema, bytes).value;

/** An in-memory message stream: the given requests, the sent responses collected. */
function messages(...requests: string[]): RpcMessageStream & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    requests: (async function* () {
      for (const request of requests) yield text(request);
    })(),
    send(message) {
      sent.push(read(message));
      return undefined;
    },
  };
}

describe("RPC core", () => {
  let outcomes: { method: string; code: Code | undefined }[];
  const observer: RpcObserver = (service, method, code, seconds) => {
    assert.equal(service, Echo);
    assert.ok(seconds >= 0);
    outcomes.push({ method: method.name, code });
  };
  const core = new RpcCore([[Echo, echoImpl]], { observer, writeMaxBytes: 1000, readMaxBytes: 1000 });
  const init: RpcCallInit = { values: createContextValues().set(callerKey, "alice"), protocolName: "drpc" };
  const say = core.method("/test.v1.Echo/Say")!;

  beforeEach(() => {
    outcomes = [];
    lastContext = undefined;
  });

  it("unary: request bytes in, response bytes out, with the context of the call", async () => {
    assert.equal(read(await core.unary(say, text("hi"), init)), "said hi");
    assert.equal(lastContext?.method.name, "Say");
    assert.equal(lastContext?.service, Echo);
    assert.equal(lastContext?.protocolName, "drpc");
    assert.equal(lastContext?.url, "/test.v1.Echo/Say");
    assert.equal(lastContext?.requestMethod, "POST");
    assert.equal(lastContext?.timeoutMs(), undefined);
    assert.deepEqual(outcomes, [{ method: "Say", code: undefined }]);
  });

  it("context values reach the handler", async () => {
    assert.equal(read(await core.unary(say, text("who"), init)), "alice");
  });

  it("request headers come from the binding", async () => {
    assert.equal(read(await core.unary(say, text("header"), { ...init, requestHeader: [["x-k", "v"]] })), "v");
  });

  it("server streaming: the first request in, every response out", async () => {
    const io = messages("3");
    await core.stream(core.method("/test.v1.Echo/Count")!, io, init);
    assert.deepEqual(io.sent, ["1", "2", "3"]);
  });

  it("client streaming: every request in, one response out", async () => {
    const io = messages("a", "b", "c");
    await core.stream(core.method("/test.v1.Echo/Collect")!, io, init);
    assert.deepEqual(io.sent, ["a,b,c"]);
  });

  it("bidi: each request answered as it comes", async () => {
    const io = messages("x", "y");
    await core.stream(core.method("/test.v1.Echo/Chat")!, io, init);
    assert.deepEqual(io.sent, ["re:x", "re:y"]);
    assert.deepEqual(outcomes, [{ method: "Chat", code: undefined }]);
  });

  it("unary over a message stream takes the first request", async () => {
    const io = messages("one");
    await core.stream(say, io, init);
    assert.deepEqual(io.sent, ["said one"]);
  });

  it("a unary call without a request message fails with Unimplemented, as connect answers it", async () => {
    await assert.rejects(core.stream(say, messages(), init), (err: ConnectError) => {
      assert.equal(err.code, Code.Unimplemented);
      assert.equal(err.rawMessage, "protocol error: missing input message for unary method");
      return true;
    });
  });

  it("an unimplemented method fails with Unimplemented (12) and the observer sees it", async () => {
    await assert.rejects(core.unary(core.method("/test.v1.Echo/Missing")!, text(""), init), (err: ConnectError) => {
      assert.equal(err.code, Code.Unimplemented);
      assert.equal(err.rawMessage, "test.v1.Echo.Missing is not implemented");
      return true;
    });
    assert.deepEqual(outcomes, [{ method: "Missing", code: Code.Unimplemented }]);
  });

  it("an unknown path has no method; its error is Unimplemented (12)", () => {
    assert.equal(core.method("/test.v1.Echo/Nope"), undefined);
    assert.equal(core.method("/nope.v1.Nope/Say"), undefined);
    assert.equal(unknownMethodError("/nope.v1.Nope/Say").code, Code.Unimplemented);
  });

  it("errors keep their code; anything else thrown becomes Unknown; the observer sees both", async () => {
    await assert.rejects(core.unary(say, text("fail"), init), (err: ConnectError) => err.code === Code.FailedPrecondition && err.rawMessage === "asked to fail");
    await assert.rejects(core.unary(say, text("crash"), init), (err: ConnectError) => err.code === Code.Unknown && err.rawMessage === "plain error");
    assert.deepEqual(outcomes, [
      { method: "Say", code: Code.FailedPrecondition },
      { method: "Say", code: Code.Unknown },
    ]);
  });

  it("a request that does not parse is InvalidArgument; one over readMaxBytes is ResourceExhausted", async () => {
    await assert.rejects(core.unary(say, Uint8Array.of(0x0a, 0x05, 0x61), init), (err: ConnectError) => err.code === Code.InvalidArgument);
    await assert.rejects(core.unary(say, text("y".repeat(1001)), init), (err: ConnectError) => err.code === Code.ResourceExhausted);
  });

  it("a response over writeMaxBytes is ResourceExhausted", async () => {
    await assert.rejects(core.unary(say, text("big"), init), (err: ConnectError) => err.code === Code.ResourceExhausted);
  });
});

describe("RPC core: the lazy handler context", () => {
  const RealAbortController = globalThis.AbortController;
  const RealHeaders = globalThis.Headers;
  let controllers = 0;
  let headers = 0;

  beforeEach(() => {
    controllers = 0;
    headers = 0;
    globalThis.AbortController = class extends RealAbortController {
      constructor() {
        super();
        controllers++;
      }
    };
    globalThis.Headers = class extends RealHeaders {
      constructor(init?: ConstructorParameters<typeof RealHeaders>[0]) {
        super(init);
        headers++;
      }
    };
  });
  afterEach(() => {
    globalThis.AbortController = RealAbortController;
    globalThis.Headers = RealHeaders;
  });

  const shutdown = new RealAbortController();
  const core = new RpcCore([[Echo, echoImpl]], { shutdownSignal: shutdown.signal });
  const say = core.method("/test.v1.Echo/Say")!;
  const wait = { ...say, impl: echo.wait as never };

  /** A transport whose signal is built only when read, as a DRPC call's is. */
  function transport(): { signal: AbortSignal; cancel(): void; built: () => boolean } {
    let controller: AbortController | undefined;
    let canceled = false;
    return {
      get signal() {
        controller ??= new AbortController();
        if (canceled) controller.abort();
        return controller.signal;
      },
      cancel() {
        canceled = true;
        controller?.abort();
      },
      built: () => controller !== undefined,
    };
  }

  it("a handler that reads neither signal nor headers costs no AbortController and no Headers", async () => {
    const cancellation = transport();
    await core.unary(say, text("hi"), { values: createContextValues(), protocolName: "drpc", cancellation, requestHeader: [["x-k", "v"]] });
    assert.equal(controllers, 0);
    assert.equal(headers, 0);
    assert.equal(cancellation.built(), false);
  });

  it("reading the signal builds it and links the transport's", async () => {
    const cancellation = transport();
    assert.equal(read(await core.unary(say, text("signal"), { values: createContextValues(), protocolName: "drpc", cancellation })), "false");
    assert.equal(cancellation.built(), true);
    assert.ok(controllers >= 1);
  });

  it("the signal aborts with Canceled when the transport cancels", async () => {
    const cancellation = transport();
    const call = core.unary(wait, text(""), { values: createContextValues(), protocolName: "drpc", cancellation });
    cancellation.cancel();
    await assert.rejects(call, (err: ConnectError) => err.code === Code.Canceled);
  });

  it("the signal aborts at the deadline and the call fails with DeadlineExceeded", async () => {
    const call = core.unary(wait, text(""), { values: createContextValues(), protocolName: "grpc", timeoutMs: 1 });
    await assert.rejects(call, (err: ConnectError) => err.code === Code.DeadlineExceeded);
  });

  it("the deadline fails the call even when the handler never reads its signal", async () => {
    const never = { ...say, impl: (() => new Promise(() => {})) as never };
    await assert.rejects(core.unary(never, text(""), { values: createContextValues(), protocolName: "grpc", timeoutMs: 1 }), (err: ConnectError) => err.code === Code.DeadlineExceeded);
  });

  it("the signal aborts at shutdown and when the call completes", async () => {
    assert.equal(read(await core.unary(say, text("signal"), { values: createContextValues(), protocolName: "drpc" })), "false");
    assert.equal(lastContext?.signal.aborted, true, "aborted once the call completed");
    const call = core.unary(wait, text(""), { values: createContextValues(), protocolName: "drpc" });
    await Promise.resolve();
    shutdown.abort(new ConnectError("shutting down", Code.Unavailable));
    await assert.rejects(call, (err: ConnectError) => err.code === Code.Unavailable);
  });
});
