import type { Duplex } from "node:stream";
import type { ContextValues } from "@connectrpc/connect";
import { DrpcServerConnection, type DrpcCall, type DrpcConnectionOptions, type DrpcHandler } from "../drpc/index.js";
import { connectErrorOf } from "./drpc-connect-error.js";
import type { RpcCallInit } from "./handler-context.js";
import { unknownMethodError, type RpcCore, type RpcMessageStream } from "./rpc-core.js";

/**
 * A DRPC handler serving the RPC core: the Invoke's method string is the gRPC path. Unary and
 * client-streaming calls end with their reply and CloseSend (drpc's way); server streams and
 * bidi calls end with Close, as coderd's StreamDERPMaps, WorkspaceUpdates and Coordinate do.
 * Failures go out as Error packets with the Connect code (= gRPC's number) and raw message;
 * unknown paths and unimplemented methods get 12 (Unimplemented), which Coder's clients test for.
 * `values` is every call's context values: the connection's caller, fixed for its lifetime.
 */
export function drpcRpcHandler(core: RpcCore, values: ContextValues): DrpcHandler {
  return (call) => serveCall(core, values, call);
}

/** Serves DRPC on `transport` (a yamux stream) with the RPC core. */
export function serveDrpc(transport: Duplex, core: RpcCore, values: ContextValues, options?: DrpcConnectionOptions): DrpcServerConnection {
  return new DrpcServerConnection(transport, drpcRpcHandler(core, values), options);
}

async function serveCall(core: RpcCore, values: ContextValues, call: DrpcCall): Promise<void> {
  try {
    const method = core.method(call.method);
    if (method === undefined) throw unknownMethodError(call.method);
    const init: RpcCallInit = { values, protocolName: "drpc", cancellation: call, requestHeader: headersOf(call.metadata) };
    switch (method.desc.methodKind) {
      case "unary": {
        const reply = await core.unary(method, await call.receive(), init);
        await call.send(reply);
        call.closeSend();
        return;
      }
      case "client_streaming":
        await core.stream(method, new DrpcMessageStream(call), init);
        call.closeSend();
        return;
      default:
        await core.stream(method, new DrpcMessageStream(call), init);
        call.close();
    }
  } catch (err) {
    const error = connectErrorOf(err);
    call.error(error.code, error.rawMessage); // a no-op when the RPC is already over
  }
}

/** A DRPC call as the core's message stream, with DRPC failures as ConnectErrors. */
class DrpcMessageStream implements RpcMessageStream {
  constructor(private readonly call: DrpcCall) {}

  get requests(): AsyncIterable<Uint8Array> {
    return receiveAll(this.call);
  }

  send(message: Uint8Array): Promise<void> | undefined {
    try {
      return this.call.send(message);
    } catch (err) {
      throw connectErrorOf(err);
    }
  }
}

async function* receiveAll(call: DrpcCall): AsyncGenerator<Uint8Array> {
  for (;;) {
    let message: Uint8Array | undefined;
    try {
      message = await call.receive();
    } catch (err) {
      throw connectErrorOf(err);
    }
    if (message === undefined) return;
    yield message;
  }
}

/** Invoke metadata as request headers; keys that are not valid header names are left out. */
function headersOf(metadata: ReadonlyMap<string, string> | undefined): Headers | undefined {
  if (metadata === undefined) return undefined;
  const headers = new Headers();
  for (const [key, value] of metadata) {
    try {
      headers.append(key, value);
    } catch {
      // Headers refuses names and values HTTP can't carry; DRPC metadata may hold any string.
    }
  }
  return headers;
}
