import type { IncomingHttpHeaders } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentIdentity } from "../auth/agent-identity.js";
import { authenticateAgent, type LookupAgentByToken } from "../auth/authenticate.js";
import { extractToken } from "../auth/token.js";
import { HttpError } from "../http/http-error.js";
import { API_VERSION_HEADER, SESSION_TOKEN_HEADER } from "../protocol/agent-rpc.js";
import { negotiateApiVersion } from "./api-version.js";

/** What admission reads: the token lookup, the replica every admitted connection is served by, the API offered. */
export interface AdmissionOptions {
  lookup: LookupAgentByToken;
  replicaId: string;
  /** The newest minor of API 2 offered (see `servedApiMinor`); default the newest this build knows. */
  apiMinor?: number;
}

/** An agent's request as admission sees it: where its token may be, and the API version it asks for. */
export interface AgentCredentials {
  headers: IncomingHttpHeaders;
  /** The request URL, whose query may carry the token; absent for plain-port calls. */
  url?: URL;
  apiVersion: string | null | undefined;
}

/** An admitted agent: the identity it is served as, and what a tunnel holds to keep it current. */
export interface Admission {
  identity: AgentIdentity;
  /** The token it authenticated with. */
  token: string;
  /** Date.now() before the token was looked up. */
  lookedUpAt: number;
}

/**
 * The one admission of an agent, for the tunnel's upgrade and each plain-port call alike: its
 * token first (401, 403 for an outdated build, 503 when the database can't be reached, 500 when
 * it fails otherwise), then the API version it asks for (400). Throws {@link HttpError}.
 */
export async function admit(credentials: AgentCredentials, options: AdmissionOptions): Promise<Admission> {
  const lookedUpAt = Date.now();
  const token = extractToken(credentials.headers, credentials.url);
  const agent = await authenticateAgent(token, options.lookup);
  const connection = { apiVersion: negotiateApiVersion(credentials.apiVersion, options.apiMinor), replicaId: options.replicaId };
  // Object.assign rather than a spread literal: V8 gave every spread-built identity a hidden class
  // of its own (about 0.6 KB per idle tunnel, measured); assigned ones share one.
  return { identity: Object.assign({}, agent, connection), token: token.toLowerCase(), lookedUpAt };
}

/** {@link admit}, for a caller that needs only the identity the connection is served as. */
export async function admitAgent(credentials: AgentCredentials, options: AdmissionOptions): Promise<AgentIdentity> {
  return (await admit(credentials, options)).identity;
}

/**
 * {@link admitAgent} for an RPC on the plain port, from its request headers: the token as an agent
 * sends it, the version in `Coder-Agent-Api-Version`. A refusal becomes the matching ConnectError.
 */
export async function admitPlainCaller(header: Headers, options: AdmissionOptions): Promise<AgentIdentity> {
  const headers: IncomingHttpHeaders = {
    cookie: header.get("cookie") ?? undefined,
    [SESSION_TOKEN_HEADER]: header.get(SESSION_TOKEN_HEADER) ?? undefined,
    authorization: header.get("authorization") ?? undefined,
  };
  return admitPlainHeaders(headers, header.get(API_VERSION_HEADER), options);
}

/**
 * {@link admitPlainCaller} from an HTTP/2 stream's raw headers, as the lean unary path has them
 * before it reads the request body.
 */
export function admitPlainStream(headers: IncomingHttpHeaders, options: AdmissionOptions): Promise<AgentIdentity> {
  const version = headers[API_VERSION_HEADER];
  return admitPlainHeaders(headers, Array.isArray(version) ? version[0] : version, options);
}

async function admitPlainHeaders(headers: IncomingHttpHeaders, apiVersion: string | null | undefined, options: AdmissionOptions): Promise<AgentIdentity> {
  try {
    return await admitAgent({ headers, apiVersion }, options);
  } catch (err) {
    if (err instanceof HttpError) throw new ConnectError(err.message, connectCodeOf(err.status));
    throw err;
  }
}

function connectCodeOf(status: number): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 503:
      return Code.Unavailable;
    default:
      return Code.Internal;
  }
}
