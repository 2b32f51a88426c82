import { z } from "zod";
import { invalidInFile, type ConfigFileValues, type FlagSet } from "./flag.js";
import { readStructuredFile } from "./structured-file.js";
import { UsageError } from "./usage-error.js";

/**
 * Reads a config file (`.yaml` or `.yml`, else JSON): a mapping from flag names to values, e.g.
 *
 *   listen: 0.0.0.0:3000
 *   database-url: postgres://agentgate@db:5432/agentgate
 *   agent-update-interval: 15s
 *
 * validated by a strict schema built from `flags` (every flag any command takes), so an unknown
 * key or a bad value fails naming the key. A command uses the keys of its own flags.
 */
export async function readConfigFile(path: string, flags: FlagSet): Promise<ConfigFileValues> {
  const input = await readStructuredFile(path, "config file", (message) => new UsageError(message));
  return { path, values: validateConfig(path, input, flags) };
}

function validateConfig(path: string, input: unknown, flags: FlagSet): Record<string, unknown> {
  const shape = Object.fromEntries(Object.entries(flags).map(([name, f]) => [name, f.kind.file.optional()]));
  const r = z.strictObject(shape, { error: "want a mapping of flag names to values" }).safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") throw new UsageError(`config file ${path}: unknown key ${issue.keys[0]} (keys are flag names without --)`);
  const key = issue.path[0];
  if (typeof key !== "string") throw new UsageError(`config file ${path}: ${issue.message}`);
  throw invalidInFile(path, key, (input as Record<string, unknown>)[key], issue.message, flags[key]);
}
