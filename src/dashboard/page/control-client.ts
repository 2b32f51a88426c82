import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ControlService } from "../../../gen/agentgate/control/v1/control_pb.js";

/** The control API as the page calls it. */
export type Control = Client<typeof ControlService>;

/** A client of this server's control API (same origin) that sends `token` as the bearer token. */
export function controlClient(token: string): Control {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(ControlService, createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true, interceptors: [bearer] }));
}

/** Whether `err` means the token was refused: the page then signs out and says why. */
export function isRefusedToken(err: unknown): err is ConnectError {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

/** One line for an error, as the server put it. */
export function errorText(err: unknown): string {
  if (err instanceof ConnectError) return `${Code[err.code] ?? "error"}: ${err.rawMessage}`;
  return err instanceof Error ? err.message : String(err);
}
