import { databaseFlags } from "../config/server-flags.js";
import { defineCommand } from "./command-spec.js";
import { openMigratedDatabase } from "./database-options.js";
import { jsonFlag } from "./json-flag.js";

/** `agentgate migrate`: apply pending migrations and say which. */
export const migrateCommand = defineCommand({
  name: "migrate",
  summary: "apply pending database migrations",
  description: "Applies pending database migrations (serve also does this at start); several processes starting together apply each once.",
  flags: { ...databaseFlags, ...jsonFlag },
  epilog: `--json prints {"applied": ["0001_init", ...]}.`,
  async run({ values }) {
    const { db, applied } = await openMigratedDatabase(values);
    await db.close();
    if (values.json) process.stdout.write(`${JSON.stringify({ applied })}\n`);
    else if (applied.length === 0) process.stdout.write("database is up to date\n");
    else for (const v of applied) process.stdout.write(`applied ${v}\n`);
  },
});
