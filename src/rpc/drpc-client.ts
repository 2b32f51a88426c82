import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescMethodBiDiStreaming,
  type DescMethodClientStreaming,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { DrpcError, DrpcErrorCode, DrpcSessionClient, type DrpcCall, type DrpcCallOptions, type DrpcCaller, type DrpcSessionClientOptions } from "../drpc/index.js";
import { Session } from "../yamux/index.js";
import { connectErrorOf } from "./drpc-connect-error.js";

/** A bidi call of the typed client: send and receive in any order, as Coordinate needs. */
export interface DrpcBidiCall<I extends DescMessage, O extends DescMessage> {
  /** Sends a request (the first also sends the Invoke); wait for it before sending more. */
  send(request: MessageInitShape<I>): Promise<void>;
  /** The next response; undefined when the server ended the call with CloseSend or Close. */
  receive(): Promise<MessageShape<O> | undefined>;
  /** No more requests; responses keep coming. */
  closeSend(): void;
  /** Ends the call both ways. */
  close(): void;
  /** The responses until the server ends the call. */
  [Symbol.asyncIterator](): AsyncIterator<MessageShape<O>>;
}

/** The typed method for one RPC of a service. */
export type DrpcClientMethod<M extends DescMethod> =
  M extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: DrpcCallOptions) => Promise<MessageShape<O>>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: DrpcCallOptions) => AsyncIterable<MessageShape<O>>
      : M extends DescMethodClientStreaming<infer I, infer O>
        ? (requests: AsyncIterable<MessageInitShape<I>>, options?: DrpcCallOptions) => Promise<MessageShape<O>>
        : M extends DescMethodBiDiStreaming<infer I, infer O>
          ? (options?: DrpcCallOptions) => DrpcBidiCall<I, O>
          : never;

/** A typed DRPC client for a service: one method per RPC, named like connect's `createClient` names them. */
export type DrpcClient<S extends DescService> = { [P in keyof S["method"]]: DrpcClientMethod<S["method"][P]> };

/**
 * A typed DRPC client for `service` from its protobuf-es descriptor, like connect's
 * `createClient`: `createDrpcClient(Agent, session).getManifest({})`. Over a yamux `Session` it
 * behaves like a Coder agent (a fresh yamux stream per RPC); any `DrpcCaller` (one connection)
 * works too. Every failure is a `ConnectError` with the server's code.
 */
export function createDrpcClient<S extends DescService>(service: S, transport: Session | DrpcCaller, options?: DrpcSessionClientOptions): DrpcClient<S> {
  const caller = transport instanceof Session ? new DrpcSessionClient(transport, options) : transport;
  const client: Record<string, unknown> = {};
  for (const method of service.methods) client[method.localName] = methodOf(caller, method);
  return client as DrpcClient<S>;
}

function methodOf(caller: DrpcCaller, method: DescMethod): unknown {
  const path = `/${method.parent.typeName}/${method.name}`;
  const { input, output } = method;
  switch (method.methodKind) {
    case "unary":
      return async (request: MessageInitShape<DescMessage>, options?: DrpcCallOptions) => {
        try {
          return fromBinary(output, await caller.unary(path, toBinary(input, create(input, request)), options));
        } catch (err) {
          throw connectErrorOf(err);
        }
      };
    case "server_streaming":
      return async function* (request: MessageInitShape<DescMessage>, options?: DrpcCallOptions) {
        const call = open(caller, path, options);
        try {
          await sendOne(call, toBinary(input, create(input, request)));
          call.closeSend();
          for (;;) {
            const message = await receiveOne(call);
            if (message === undefined) return;
            yield fromBinary(output, message);
          }
        } finally {
          call.close(); // the caller stopped early: tell the server, as drpc's client does
        }
      };
    case "client_streaming":
      return async (requests: AsyncIterable<MessageInitShape<DescMessage>>, options?: DrpcCallOptions) => {
        const call = open(caller, path, options);
        try {
          for await (const request of requests) await sendOne(call, toBinary(input, create(input, request)));
          call.closeSend();
          const reply = await receiveOne(call);
          if (reply === undefined) throw connectErrorOf(new DrpcError(DrpcErrorCode.MissingReply, "EOF: the server ended the call without a reply"));
          return fromBinary(output, reply);
        } finally {
          call.close();
        }
      };
    case "bidi_streaming":
      return (options?: DrpcCallOptions): DrpcBidiCall<DescMessage, DescMessage> => {
        const call = open(caller, path, options);
        const receive = async () => {
          const message = await receiveOne(call);
          return message === undefined ? undefined : fromBinary(output, message);
        };
        return {
          send: (request) => sendOne(call, toBinary(input, create(input, request))),
          receive,
          closeSend: () => call.closeSend(),
          close: () => call.close(),
          async *[Symbol.asyncIterator]() {
            for (let message = await receive(); message !== undefined; message = await receive()) yield message;
          },
        };
      };
  }
}

function open(caller: DrpcCaller, path: string, options: DrpcCallOptions | undefined): DrpcCall {
  try {
    return caller.open(path, options);
  } catch (err) {
    throw connectErrorOf(err);
  }
}

async function sendOne(call: DrpcCall, message: Uint8Array): Promise<void> {
  try {
    await call.send(message);
  } catch (err) {
    throw connectErrorOf(err);
  }
}

async function receiveOne(call: DrpcCall): Promise<Uint8Array | undefined> {
  try {
    return await call.receive();
  } catch (err) {
    throw connectErrorOf(err);
  }
}
