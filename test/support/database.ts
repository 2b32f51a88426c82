/**
 * Fresh databases for tests, on every engine available: PGlite always, PostgreSQL when
 * TEST_DATABASE_URL is set (e.g. postgres://postgres@127.0.0.1:5432/test; that database is only used
 * to CREATE/DROP others, never written to).
 *
 * Usage, the common case (one fresh migrated database per engine for the whole file):
 *
 *   import { forEachEngine } from "../support/database.js";
 *   forEachEngine((t) => {
 *     it("does something", async () => {
 *       await t.db.query("SELECT 1");
 *     });
 *   });
 *
 * `forEachEngine` wraps `fn` in `describe(engineName)`, opens the database in `before` and drops it
 * in `after`. Tests in one file share that database, so give each test its own rows (the
 * fixtures in ./fixtures.ts make unique users/workspaces).
 *
 * For a database a child process opens itself (CLI tests), or one not yet migrated:
 *
 *   const tdb = await createTestDatabase("pg", { migrated: false });
 *   spawn("node", ["--import", "tsx", "src/cli/main.ts", "migrate", ...tdb.cliArgs]);
 *   const db = await tdb.open();   // PGlite allows one process per folder: close before spawning
 *   await tdb.destroy();           // closes what open() returned, drops the database / folder
 *
 * PGlite's initdb takes seconds, so a migrated (and an empty) PGlite folder is made once per
 * migration set, in the OS temp folder, and each test database is a copy of it.
 */
import { createHash, randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import pg from "pg";
import { openDatabase, type Database, type OpenDatabaseOptions } from "../../src/db/database.js";
import { loadMigrations, migrate } from "../../src/db/migrate.js";

/** An engine name as `Database.engine` reports it. */
export type EngineName = Database["engine"];

/** The engines this run can test: PGlite, plus pg when TEST_DATABASE_URL is set. */
export function availableEngines(): EngineName[] {
  return process.env.TEST_DATABASE_URL ? ["pglite", "pg"] : ["pglite"];
}

/** A database made for one test file. */
export interface TestDatabase {
  readonly engine: EngineName;
  /** What `openDatabase` needs to reach it. */
  readonly options: { databaseUrl?: string; dataDir?: string };
  /** The same as CLI flags: `["--database-url", url]` or `["--data-dir", dir]`. */
  readonly cliArgs: string[];
  /** Opens a handle (closed by `destroy`). On PGlite only one process may have it open at a time. */
  open(extra?: Omit<OpenDatabaseOptions, "databaseUrl" | "dataDir">): Promise<Database>;
  /** Closes every handle `open` returned, then drops the database or removes the folder. */
  destroy(): Promise<void>;
}

/** Creates a fresh database on `engine`, migrated unless `migrated: false`. */
export async function createTestDatabase(engine: EngineName, opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = opts.migrated ?? true;
  const handles: Database[] = [];
  let options: { databaseUrl?: string; dataDir?: string };
  let drop: () => Promise<void>;
  if (engine === "pg") {
    const { url, dropDatabase } = await createPgDatabase();
    options = { databaseUrl: url };
    drop = dropDatabase;
    if (migrated) {
      const db = await openDatabase(options);
      try {
        await migrate(db);
      } finally {
        await db.close();
      }
    }
  } else {
    const template = await pgliteTemplate(migrated);
    const dir = await mkdtemp(join(tmpdir(), "agentgate-test-"));
    await cp(template, dir, { recursive: true });
    options = { dataDir: dir };
    drop = () => rm(dir, { recursive: true, force: true });
  }
  return {
    engine,
    options,
    cliArgs: options.databaseUrl !== undefined ? ["--database-url", options.databaseUrl] : ["--data-dir", options.dataDir!],
    async open(extra = {}) {
      const db = await openDatabase({ ...extra, ...options });
      handles.push(db);
      return db;
    },
    async destroy() {
      await Promise.all(handles.map((h) => h.close()));
      await drop();
    },
  };
}

/** A test file's view of one engine inside {@link forEachEngine}. */
export interface EngineContext {
  readonly name: EngineName;
  /** The open, migrated database (available from the first test on). */
  readonly db: Database;
  /** The test database, e.g. to open a second handle on pg. */
  readonly testDb: TestDatabase;
}

/** The engine single-engine test files run on: PostgreSQL when TEST_DATABASE_URL is set, else PGlite. */
export function primaryEngine(): EngineName {
  return process.env.TEST_DATABASE_URL ? "pg" : "pglite";
}

/** A fresh migrated database on `engine` for the enclosing suite, opened in `before` and dropped in `after`. */
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
      if (db === undefined) throw new Error("test database not open yet: use t.db inside a test or hook");
      return db;
    },
    get testDb() {
      if (testDb === undefined) throw new Error("test database not created yet");
      return testDb;
    },
  };
}

/** Runs `fn` inside `describe(engine)` once per available engine, with a fresh migrated database each. */
export function forEachEngine(fn: (t: EngineContext) => void): void {
  for (const name of availableEngines()) {
    describe(name, () => {
      const t = useTestDatabase(name);
      fn({
        name,
        get db() {
          return t.db;
        },
        get testDb() {
          return t.testDb;
        },
      });
    });
  }
}

async function createPgDatabase(): Promise<{ url: string; dropDatabase: () => Promise<void> }> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error("TEST_DATABASE_URL is not set");
  const name = `agentgate_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  await withAdmin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // FORCE: a test that failed half-way may leave connections open.
    dropDatabase: () => withAdmin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

async function withAdmin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A PGlite folder made once and copied per test. Keyed by PGlite's version and the migrations'
 * content, so a changed migration gets a new template; built aside and renamed into place so
 * parallel test files never see a half-made one.
 */
async function pgliteTemplate(migrated: boolean): Promise<string> {
  const hash = createHash("sha256");
  const pkg = JSON.parse(await readFile(new URL("../../node_modules/@electric-sql/pglite/package.json", import.meta.url), "utf8")) as { version: string };
  hash.update(pkg.version);
  if (migrated) for (const m of await loadMigrations()) hash.update(m.version).update(m.sql);
  const root = join(tmpdir(), "agentgate-test-templates");
  const dir = join(root, `pglite-${migrated ? "migrated" : "empty"}-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(dir)) return dir;
  await mkdir(root, { recursive: true });
  const building = `${dir}.building-${process.pid}-${randomBytes(4).toString("hex")}`;
  const db = await openDatabase({ dataDir: building });
  try {
    if (migrated) await migrate(db);
  } finally {
    await db.close();
  }
  try {
    await rename(building, dir);
  } catch {
    // Another test file won the race; its template is as good as ours.
    await rm(building, { recursive: true, force: true });
  }
  return dir;
}
