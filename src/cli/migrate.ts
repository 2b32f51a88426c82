import { parseArgs } from "node:util";
import { databaseOptions, databaseOptionsHelp, openMigratedDatabase } from "./database-options.js";

const USAGE = `usage: agentgate migrate [--json] [flags]

Applies pending database migrations (serve also does this at start).

flags:
${databaseOptionsHelp}
  --json               print {"applied": [...]} instead of one line per migration
`;

/** `agentgate migrate`: apply pending migrations and say which. */
export async function runMigrate(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...databaseOptions, json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { db, applied } = await openMigratedDatabase(values);
  await db.close();
  if (values.json) process.stdout.write(`${JSON.stringify({ applied })}\n`);
  else if (applied.length === 0) process.stdout.write("database is up to date\n");
  else for (const v of applied) process.stdout.write(`applied ${v}\n`);
  return 0;
}
