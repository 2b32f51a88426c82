import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import { httpUrl, text } from "../config/flag-kinds.js";
import { flag } from "../config/flag.js";
import { databaseFlags } from "../config/server-flags.js";
import type { DatabaseLocation } from "./database-options.js";
import { networkFailure } from "./network-error.js";
import { readAdminTokenFile, readRunningServer } from "./server-files.js";

/** A client of a server's control API. */
export type ControlClient = Client<typeof ControlService>;

/** The flags of commands that go through a server's control API when there is one, else to the database. */
export const controlFlags = {
  url: flag(httpUrl, {
    defaultNote: "the server running on --data-dir, if any, else the database itself",
    help: "go through this server's control API",
  }),
  "admin-token": flag(text, { placeholder: "TOKEN", secret: true, defaultNote: "<data-dir>/admin-token", help: "the control API's bearer token" }),
  ...databaseFlags,
};

/** The resolved values of {@link controlFlags}. */
export interface ControlTarget extends DatabaseLocation {
  url?: URL | undefined;
  "admin-token"?: string | undefined;
}

/** A control-API failure the CLI reports in one line (no server token, …). */
export class ControlTargetError extends Error {
  override name = "ControlTargetError";
}

/**
 * The control client a command should use, or undefined to open the database directly. With
 * --url, that server. Without one, on PGlite, the server named by the data folder's
 * `server.json` while its process lives: it holds the folder, so the database can't be opened
 * beside it.
 */
export async function controlClientFor(target: ControlTarget): Promise<ControlClient | undefined> {
  const dataDir = target["data-dir"];
  let url = target.url?.href.replace(/\/$/, "");
  if (url === undefined) {
    if (target["database-url"] || dataDir === undefined) return undefined;
    url = (await readRunningServer(dataDir))?.url;
    if (url === undefined) return undefined;
  }
  const adminToken = target["admin-token"] || (dataDir === undefined ? undefined : await readAdminTokenFile(dataDir));
  if (adminToken === undefined) {
    throw new ControlTargetError(`no admin token for ${url}: pass --admin-token or set AGENTGATE_ADMIN_TOKEN`);
  }
  return createControlClient({ url, adminToken });
}

/** A Connect client of `url`'s control API that sends `adminToken` as a bearer token. */
export function createControlClient(opts: { url: string; adminToken: string }): ControlClient {
  const bearer: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${opts.adminToken}`);
    try {
      return await next(req);
    } catch (err) {
      // connect says "[unavailable] connect ECONNREFUSED …": say which server could not be reached.
      const failure = err instanceof ConnectError && err.code === Code.Unavailable ? networkFailure(err.cause ?? err) : undefined;
      if (failure !== undefined) throw new ConnectError(`cannot reach the server at ${opts.url} (${failure})`, Code.Unavailable);
      throw err;
    }
  };
  return createClient(ControlService, createConnectTransport({ baseUrl: opts.url, httpVersion: "1.1", interceptors: [bearer] }));
}
