/**
 * The protocol-neutral RPC core: the Agent and Tailnet implementations connect's router serves,
 * called from other protocols (DRPC today), with one observer for metrics across all of them.
 */
export {
  RpcCore,
  rpcRegistration,
  unknownMethodError,
  MAX_MESSAGE_BYTES,
  type RpcCoreOptions,
  type RpcMessageStream,
  type RpcMethod,
  type RpcObserver,
  type RpcRegistration,
} from "./rpc-core.js";
export { DEADLINE_EXCEEDED, type HeadersInit, type RpcCallInit } from "./handler-context.js";
export { drpcRpcHandler, serveDrpc } from "./serve-drpc.js";
export { createDrpcClient, type DrpcBidiCall, type DrpcClient, type DrpcClientMethod } from "./drpc-client.js";
export { connectErrorOf } from "./drpc-connect-error.js";
