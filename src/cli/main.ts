#!/usr/bin/env node
/**
 * The `agentgate` command: one entry point, one module per command, wired by `program.ts`.
 */
import { agentCommand } from "./agent.js";
import { scaletestCommand } from "./scaletest.js";
import { migrateCommand } from "./migrate.js";
import { runProgram } from "./program.js";
import { serveCommand } from "./serve.js";
import { statusCommand } from "./status.js";
import { workspaceCommand } from "./workspace.js";

// `agentgate --help | head` closes stdout early: that is the reader being done, not a failure.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

process.exitCode = await runProgram(process.argv.slice(2), [serveCommand, migrateCommand, workspaceCommand, statusCommand, agentCommand, scaletestCommand]);
