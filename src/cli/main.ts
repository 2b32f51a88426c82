#!/usr/bin/env node
/**
 * The `agentgate` command: one entry point, one module per subcommand.
 */
import { runAgent } from "./agent.js";
import { runServe } from "./serve.js";
import { runMigrate } from "./migrate.js";
import { runStatus } from "./status.js";
import { runWorkspace } from "./workspace.js";

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { run: Command; summary: string }> = {
  serve: { run: runServe, summary: "run the server" },
  migrate: { run: runMigrate, summary: "apply pending database migrations" },
  workspace: { run: runWorkspace, summary: "create, build or delete a workspace (provisioning)" },
  status: { run: runStatus, summary: "list agents and their status" },
  agent: { run: runAgent, summary: "run the reference agent against a server" },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: agentgate <command> [flags]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 1 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`agentgate: unknown command "${name}"\n${usage()}`);
    return 1;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`agentgate: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
