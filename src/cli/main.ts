#!/usr/bin/env node
/**
 * The `agentgate` command: one entry point, one module per command, wired by `program.ts`.
 */
import { agentCommand } from "./agent.js";
import { migrateCommand } from "./migrate.js";
import { runProgram } from "./program.js";
import { serveCommand } from "./serve.js";
import { statusCommand } from "./status.js";
import { workspaceCommand } from "./workspace.js";

process.exitCode = await runProgram(process.argv.slice(2), [serveCommand, migrateCommand, workspaceCommand, statusCommand, agentCommand]);
