/**
 * The agent SDK: dial agentgate, keep a tunnel up, call the Agent and Tailnet services.
 * Imports nothing of the server.
 */
export { connectAgent, SDK_API_VERSION, type AgentConnection, type ConnectAgentOptions, type RedialInfo } from "./agent-connection.js";
export { DialRefusedError } from "./dial.js";
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "../backoff.js";
