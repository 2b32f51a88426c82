/**
 * A real agentgate server for end-to-end tests: started through the same `startAgentgate` as
 * `agentgate serve`, on 127.0.0.1 and a free port, with intervals shortened through its config.
 *
 *   const db = await openPrimaryDatabase();              // pg when TEST_DATABASE_URL is set, else PGlite
 *   const srv = await startTestServer(db.db, { agentUpdateIntervalMs: 100 });
 *   ... srv.url ...
 *   await srv.close(); await db.destroy();
 *
 * The dashboard at `/` serves dist/dashboard, which only a build makes: a test of it awaits
 * `buildDashboard()` (src/dashboard/build-dashboard.ts, a fraction of a second) before starting
 * its server, so it always serves the current sources.
 */
import { loadServerConfig, type ServerConfig } from "../../src/config.js";
import type { Database } from "../../src/db/database.js";
import { silentLogger } from "../../src/log.js";
import type { AgentServer } from "../../src/server/agent-server.js";
import { startAgentgate } from "../../src/server/start.js";

export interface TestServer {
  server: AgentServer;
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  /** host:port, for clients that want it so. */
  hostPort: string;
  close(): Promise<void>;
}

/**
 * Server config for tests: a free port on 127.0.0.1, defaults otherwise, then `overrides`. The
 * overload bound is out of reach unless a test sets it: a machine busy with other tests lags
 * its event loop, which is not this server's saturation.
 */
export function testServerConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...loadServerConfig({ cli: { listen: "127.0.0.1:0" } }), overloadLagMs: 60_000, ...overrides };
}

export async function startTestServer(db: Database, overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const server = await startAgentgate(testServerConfig(overrides), db, silentLogger());
  const hostPort = `127.0.0.1:${server.address.port}`;
  return { server, url: `http://${hostPort}`, hostPort, close: () => server.shutdown() };
}

export { primaryEngine, useTestDatabase } from "./database.js";

/**
 * Polls `check` until it returns a value other than undefined, for state that only the
 * database shows (no event to await). Bounded: fails after `timeoutMs`.
 */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
