import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import { resolveDatabaseLocation, type DatabaseFlagValues } from "./database-options.js";
import { readAdminTokenFile, readRunningServer } from "./server-files.js";

/** A client of a server's control API. */
export type ControlClient = Client<typeof ControlService>;

/** The flags commands that can go through the control API take, for `util.parseArgs`. */
export const controlOptions = {
  /** A running server's URL. Default: $AGENTGATE_URL; without one, the server holding --data-dir, if any. */
  url: { type: "string" },
  /** The control API's bearer token. Default: $AGENTGATE_ADMIN_TOKEN, else the data folder's admin-token file. */
  "admin-token": { type: "string" },
} as const;

/** Help lines for {@link controlOptions}. */
export const controlOptionsHelp = [
  "  --url URL            go through this server's control API (default: $AGENTGATE_URL; without one, the",
  "                       server running on --data-dir if there is one, else the database directly)",
  "  --admin-token TOKEN  control API token (default: $AGENTGATE_ADMIN_TOKEN, else <data-dir>/admin-token)",
].join("\n");

/** The parsed values of {@link controlOptions} with the database flags. */
export interface ControlFlagValues extends DatabaseFlagValues {
  url?: string | undefined;
  "admin-token"?: string | undefined;
}

/** A control-API failure the CLI reports in one line (no server token, …). */
export class ControlTargetError extends Error {
  override name = "ControlTargetError";
}

/**
 * The control client a command should use, or undefined to open the database directly. With a
 * URL (flag or environment), that server. Without one, on PGlite, the server named by the data
 * folder's `server.json` while its process lives: it holds the folder, so the database can't be
 * opened beside it.
 */
export async function controlClientFor(values: ControlFlagValues, env: NodeJS.ProcessEnv = process.env): Promise<ControlClient | undefined> {
  const location = resolveDatabaseLocation(values, env);
  let url = values.url || env.AGENTGATE_URL || undefined;
  if (url === undefined) {
    if (location.databaseUrl !== undefined) return undefined;
    url = (await readRunningServer(location.dataDir))?.url;
    if (url === undefined) return undefined;
  }
  const adminToken = values["admin-token"] || env.AGENTGATE_ADMIN_TOKEN || (await readAdminTokenFile(location.dataDir));
  if (adminToken === undefined) {
    throw new ControlTargetError(`no admin token for ${url}: pass --admin-token or set AGENTGATE_ADMIN_TOKEN`);
  }
  return createControlClient({ url, adminToken });
}

/** A Connect client of `url`'s control API that sends `adminToken` as a bearer token. */
export function createControlClient(opts: { url: string; adminToken: string }): ControlClient {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${opts.adminToken}`);
    return next(req);
  };
  return createClient(ControlService, createConnectTransport({ baseUrl: opts.url, httpVersion: "1.1", interceptors: [bearer] }));
}
