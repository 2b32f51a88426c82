import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { loadMigrations, migrate } from "../../src/db/migrate.js";
import { availableEngines, createTestDatabase, type TestDatabase } from "../support/database.js";

const run = promisify(execFile);
const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;

describe("loadMigrations", () => {
  it("rejects a file name without a four-digit number", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentgate-mig-"));
    after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "1_init.sql"), "SELECT 1");
    await assert.rejects(loadMigrations(dir), /want NNNN_lower_snake\.sql/);
  });

  it("orders the shipped migrations by number, starting with 0001_init", async () => {
    const ms = await loadMigrations();
    assert.equal(ms[0]?.version, "0001_init");
    assert.deepEqual(ms.map((m) => m.version), [...ms.map((m) => m.version)].sort());
  });
});

for (const engine of availableEngines()) {
  describe(engine, () => {
    const made: TestDatabase[] = [];
    after(() => Promise.all(made.map((t) => t.destroy())));
    async function fresh(): Promise<TestDatabase> {
      const t = await createTestDatabase(engine, { migrated: false });
      made.push(t);
      return t;
    }

    it("applies every migration once and records it in schema_migrations", async () => {
      const db = await (await fresh()).open();
      const all = (await loadMigrations()).map((m) => m.version);
      assert.deepEqual(await migrate(db), { applied: all });
      assert.deepEqual(await migrate(db), { applied: [] });
      const { rows } = await db.query<{ version: string }>("SELECT version FROM schema_migrations ORDER BY version");
      assert.deepEqual(rows.map((r) => r.version), all);
    });

    it("rolls back a failing migration entirely and records nothing for it", async () => {
      const db = await (await fresh()).open();
      const bad = [{ version: "0001_bad", sql: "CREATE TABLE half_done (id int); SELECT 1/0;" }];
      await assert.rejects(migrate(db, { migrations: bad }), /division by zero/);
      // schema_migrations was created in the same transaction, so it is gone too.
      const { rows } = await db.query<{ half: string | null; recorded: string | null }>(
        "SELECT to_regclass('half_done')::text AS half, to_regclass('schema_migrations')::text AS recorded",
      );
      assert.deepEqual(rows[0], { half: null, recorded: null });
    });

    it("concurrent migrate calls on one handle apply each migration once", async () => {
      const db = await (await fresh()).open();
      const results = await Promise.all([migrate(db), migrate(db), migrate(db)]);
      const applied = results.flatMap((r) => r.applied).sort();
      assert.deepEqual(applied, (await loadMigrations()).map((m) => m.version));
    });

    if (engine === "pg") {
      it("`agentgate migrate` from several processes at once applies each migration once", async () => {
        const t = await fresh();
        const outs = await Promise.all(
          [0, 1, 2, 3].map(() => run(process.execPath, ["--import", "tsx", MAIN, "migrate", "--json", ...t.cliArgs])),
        );
        const applied = outs.flatMap((o) => (JSON.parse(o.stdout) as { applied: string[] }).applied).sort();
        assert.deepEqual(applied, (await loadMigrations()).map((m) => m.version));
        const db = await t.open();
        const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM schema_migrations");
        assert.equal(rows[0]!.n, applied.length);
      });
    } else {
      it("a second process on the same data folder is refused instead of corrupting it", async () => {
        const t = await fresh();
        await t.open();
        await assert.rejects(
          run(process.execPath, ["--import", "tsx", MAIN, "migrate", ...t.cliArgs]),
          (err: { code?: number; stderr?: string }) => err.code === 1 && /in use by process \d+/.test(err.stderr ?? ""),
        );
      });
    }
  });
}
