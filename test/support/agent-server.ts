/**
 * A real agentgate server for end-to-end tests: started through the same `startAgentgate` as
 * `agentgate serve`, on 127.0.0.1 and a free port, with intervals shortened through its config.
 *
 *   const db = await openPrimaryDatabase();              // pg when TEST_DATABASE_URL is set, else PGlite
 *   const srv = await startTestServer(db.db, { agentUpdateIntervalMs: 100 });
 *   ... srv.url ...
 *   await srv.close(); await db.destroy();
 */
import { after, before } from "node:test";
import { parseServerConfig, type ServerConfig } from "../../src/config.js";
import type { Database } from "../../src/db/database.js";
import { silentLogger } from "../../src/log.js";
import type { AgentServer } from "../../src/server/agent-server.js";
import { startAgentgate } from "../../src/server/start.js";
import { createTestDatabase, type EngineName, type TestDatabase } from "./database.js";

export interface TestServer {
  server: AgentServer;
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  /** host:port, for clients that want it so. */
  hostPort: string;
  close(): Promise<void>;
}

/** Server config for tests: a free port on 127.0.0.1, defaults otherwise, then `overrides`. */
export function testServerConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...parseServerConfig(["--listen", "127.0.0.1:0"], {}), ...overrides };
}

export async function startTestServer(db: Database, overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const server = await startAgentgate(testServerConfig(overrides), db, silentLogger());
  const hostPort = `127.0.0.1:${server.address.port}`;
  return { server, url: `http://${hostPort}`, hostPort, close: () => server.shutdown() };
}

/** The engine end-to-end tests run on: PostgreSQL when TEST_DATABASE_URL is set, else PGlite. */
export function primaryEngine(): EngineName {
  return process.env.TEST_DATABASE_URL ? "pg" : "pglite";
}

/** A fresh migrated database on `engine` for this test file, opened in `before` and dropped in `after`. */
export function useTestDatabase(engine: EngineName = primaryEngine()): { readonly db: Database; readonly testDb: TestDatabase } {
  let testDb: TestDatabase | undefined;
  let db: Database | undefined;
  before(async () => {
    testDb = await createTestDatabase(engine);
    db = await testDb.open();
  });
  after(async () => {
    await testDb?.destroy();
  });
  return {
    get db() {
      if (db === undefined) throw new Error("test database not open yet");
      return db;
    },
    get testDb() {
      if (testDb === undefined) throw new Error("test database not created yet");
      return testDb;
    },
  };
}

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
