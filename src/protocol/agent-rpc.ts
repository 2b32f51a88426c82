/**
 * The agent endpoint as both ends know it, the server and the agent SDK alike: where agents dial,
 * how they present their token, and which API versions exist.
 */

/** The route agents dial: a WebSocket upgrade carrying the yamux tunnel, as coderd's. */
export const AGENT_RPC_PATH = "/api/v2/workspaceagents/me/rpc";

/** The cookie and query parameter name agents may send their token in. */
export const SESSION_TOKEN_COOKIE = "coder_session_token";
/** The header agents send their token in. */
export const SESSION_TOKEN_HEADER = "coder-session-token";

/** The Agent/Tailnet API major version served. */
export const CURRENT_API_MAJOR = 2;
/** The newest minor version whose messages this build knows. */
export const CURRENT_API_MINOR = 13;
/** `CURRENT_API_MAJOR.CURRENT_API_MINOR`, what the SDK asks for. */
export const CURRENT_API_VERSION = `${CURRENT_API_MAJOR}.${CURRENT_API_MINOR}`;
/** What an agent that sends no version gets: the first 2.x API (Coder v2.7 agents dial without one). */
export const DEFAULT_API_VERSION = "2.0";
/** The header a plain-port RPC names its API version in (inside a tunnel, the upgrade's `version` did). */
export const API_VERSION_HEADER = "coder-agent-api-version";
