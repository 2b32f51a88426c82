/**
 * The `agentgate` program, built from declared commands on commander.
 *
 * commander rather than yargs or citty: it has no dependencies and supports Node 20 (v14), and it
 * gives every command and subcommand `-h/--help` and `help <command>`, `--version`, "did you mean"
 * suggestions for mistyped commands and options, and errors we can route (`exitOverride`) to our
 * exit codes. yargs' help cannot show our environment variables without a second copy of them and
 * citty has no suggestions. Values are not commander's business: it hands over what the command
 * line said, and `resolveFlags` adds the environment, the config file and the defaults, so one
 * declaration per flag (`config/flag.ts`) drives parsing, help and completion alike.
 */
import { Command, CommanderError, Help, Option } from "commander";
import { ConnectError } from "@connectrpc/connect";
import { readConfigFile } from "../config/config-file.js";
import { filePath } from "../config/flag-kinds.js";
import { envName, flag, resolveFlags, type Flag, type FlagSet } from "../config/flag.js";
import { UsageError } from "../config/usage-error.js";
import { ExitCodeError, type CommandSpec } from "./command-spec.js";
import { completionCommand, type CompletionNode } from "./completion.js";
import { packageVersion } from "./package-version.js";

/** Exit code of a usage error: a wrong flag, argument, environment variable or config file. */
export const EXIT_USAGE = 2;
/** Exit code of a command that failed at what it does. */
export const EXIT_FAILURE = 1;

/** Every command that takes flags also takes `--config`. */
const configFlags = {
  config: flag(filePath, { defaultNote: "none", help: "read flags from a YAML or JSON file whose keys are flag names" }),
};

const ROOT_EPILOG = `Every flag can also be set by its environment variable (shown in each command's help) or by
a config file (--config FILE, .yaml or .json, keys are flag names without --). The command line
wins over the environment, which wins over the file, which wins over the defaults.

Exit codes: 0 success, 1 the command failed, 2 usage error, 3 the agent was refused for good.`;

/** A declared flag as commander knows it. */
const declaredFlags = new WeakMap<Option, { name: string; flag: Flag }>();

/** Runs `agentgate` with `argv` (without node and script); resolves to the exit code. */
export async function runProgram(argv: readonly string[], specs: readonly CommandSpec<any>[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let exitCode = 0;
  const program = new Command("agentgate")
    .description("The server that agents in remote workspaces dial home to, and the tools around it.")
    .version(packageVersion(), "-V, --version", "print the version")
    .configureHelp({ optionDescription: describeOption, sortSubcommands: false })
    .addHelpText("after", `\n${ROOT_EPILOG}`);
  configure(program);
  const all = [...specs, completionCommand(() => completionTree(program))];
  const fileFlags = collectFlags(all);
  const setExitCode = (code: number) => {
    exitCode = code;
  };
  for (const spec of all) attach(program, spec, { fileFlags, env, setExitCode });
  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // Help and version asked for exit 0; help shown because a subcommand is missing is a usage error.
    return err.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  return exitCode;
}

interface AttachContext {
  /** Every flag of every command: the config file's schema. */
  fileFlags: FlagSet;
  env: NodeJS.ProcessEnv;
  setExitCode(code: number): void;
}

function attach(parent: Command, spec: CommandSpec<any>, ctx: AttachContext): void {
  const cmd = parent.command(spec.name).summary(spec.summary).description(spec.description ?? spec.summary);
  configure(cmd);
  for (const a of spec.args ?? []) cmd.argument(a.optional ? `[${a.name}]` : `<${a.name}>`, a.help);
  const flags: FlagSet = spec.run === undefined || spec.flags === undefined ? {} : { ...spec.flags, ...configFlags };
  const options = new Map<string, Option>();
  for (const [name, f] of Object.entries(flags)) {
    const option = commanderOption(name, f);
    options.set(name, option);
    cmd.addOption(option);
  }
  if (spec.epilog !== undefined) cmd.addHelpText("after", `\n${spec.epilog}`);
  for (const sub of spec.subcommands ?? []) attach(cmd, sub, ctx);
  const run = spec.run;
  if (run === undefined) return;
  // Too many arguments are reported below, in the same words as every other usage error.
  cmd.allowExcessArguments(true);
  cmd.action(async () => {
    try {
      const declared = spec.args ?? [];
      if (cmd.args.length > declared.length) throw new UsageError(`unexpected argument "${cmd.args[declared.length]}"${expectedArguments(declared)}`);
      const cli = Object.fromEntries([...options].map(([name, o]) => [name, cmd.getOptionValue(o.attributeName()) as string | string[] | boolean | undefined]));
      const { values: { config } } = resolveFlags(configFlags, { cli, env: ctx.env });
      const file = config === undefined ? undefined : await readConfigFile(config, ctx.fileFlags);
      const resolved = resolveFlags(flags, { cli, env: ctx.env, file });
      ctx.setExitCode((await run({ ...resolved, args: declared.map((_, i) => cmd.args[i]) })) ?? 0);
    } catch (err) {
      process.stderr.write(`${prefix(cmd)}${oneLine(err)}\n`);
      ctx.setExitCode(err instanceof UsageError ? EXIT_USAGE : err instanceof ExitCodeError ? err.exitCode : EXIT_FAILURE);
    }
  });
}

/** Our exit codes instead of commander's exits, and its messages in our one-line form. */
function configure(cmd: Command): void {
  cmd.exitOverride().configureOutput({
    // "error: unknown command 'stauts'\n(Did you mean status?)\n" → "agentgate: unknown command 'stauts' (did you mean status?)"
    outputError: (text, write) => write(`${prefix(cmd)}${text.replace(/^error: /, "").replace(/\n\(Did you mean/, " (did you mean").trimEnd()}\n`),
  });
}

/** "agentgate workspace build: " */
function prefix(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return `${names.join(" ")}: `;
}

function oneLine(err: unknown): string {
  const message = err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
  return message.split("\n")[0]!;
}

function expectedArguments(declared: readonly { name: string; optional?: true }[]): string {
  if (declared.length === 0) return "";
  if (declared.length === 1) return ` (one ${declared[0]!.name}${declared[0]!.optional ? " at most" : ""})`;
  return ` (${declared.map((a) => a.name).join(" ")})`;
}

function commanderOption(name: string, f: Flag): Option {
  const long = f.kind.isSwitch ? `--${name}` : `--${name} <${f.placeholder ?? f.kind.placeholder ?? "VALUE"}>`;
  const option = new Option(f.short === undefined ? long : `-${f.short}, ${long}`, f.help);
  if (f.kind.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  declaredFlags.set(option, { name, flag: f });
  return option;
}

/** A declared flag's help: its line, then its default and environment variable. */
function describeOption(this: void, option: Option): string {
  const declared = declaredFlags.get(option);
  if (declared === undefined) return option.description;
  const { name, flag: f } = declared;
  const facts: string[] = [];
  if (f.required) facts.push("required");
  if (Array.isArray(f.kind.complete)) facts.push(`one of ${f.kind.complete.join(", ")}`);
  const fallback = f.defaultNote ?? (f.kind.isSwitch ? undefined : f.default);
  if (fallback !== undefined && fallback !== "") facts.push(`default: ${fallback}`);
  if (f.kind.repeatable) facts.push("repeatable");
  facts.push(`env: ${envName(name, f)}`);
  return `${f.help} (${facts.join(", ")})`;
}

/**
 * Every flag of every command, by name. A name two commands declare must have one meaning in the
 * config file, so it must have one kind.
 */
function collectFlags(specs: readonly CommandSpec<any>[], into: FlagSet = {}): FlagSet {
  for (const spec of specs) {
    for (const [name, f] of Object.entries((spec.flags ?? {}) as FlagSet)) {
      const seen = into[name];
      if (seen !== undefined && seen.kind !== f.kind) throw new Error(`flag --${name} is declared with two kinds`);
      into[name] = f;
    }
    collectFlags(spec.subcommands ?? [], into);
  }
  return into;
}

/** What a shell may complete at each command, from commander's tree (help and version included). */
function completionTree(cmd: Command, help = new Help()): CompletionNode {
  return {
    name: cmd.name(),
    summary: help.subcommandDescription(cmd),
    commands: help.visibleCommands(cmd).map((sub) => completionTree(sub, help)),
    options: help.visibleOptions(cmd).map((o) => {
      const complete = declaredFlags.get(o)?.flag.kind.complete;
      return { names: [o.long, o.short].filter((n): n is string => n !== undefined), help: o.description, takesValue: o.required || o.optional, ...(complete ? { complete } : {}) };
    }),
  };
}
