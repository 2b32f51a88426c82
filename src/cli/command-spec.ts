import type { FlagSet, FlagValues, ResolvedFlags } from "../config/flag.js";

/** A positional argument. */
export interface ArgumentSpec {
  /** Shown in upper case in usage lines, e.g. WORKSPACE. */
  readonly name: string;
  readonly help: string;
  readonly optional?: true;
}

/** What a command's `run` is handed. */
export interface CommandContext<S extends FlagSet> {
  /** Every flag of the command, resolved from the command line, environment, config file and defaults. */
  readonly values: FlagValues<S>;
  readonly sources: ResolvedFlags<S>["sources"];
  /** The positional arguments, in declared order. */
  readonly args: readonly (string | undefined)[];
}

/**
 * One `agentgate` command, declared: the program (`program.ts`) turns it into parsing, help,
 * completion and error handling, so a command module holds only its flags and what it does.
 */
export interface CommandSpec<S extends FlagSet = FlagSet> {
  readonly name: string;
  /** One line, in the parent's list of commands. */
  readonly summary: string;
  /** Paragraphs shown in the command's own help; default the summary. */
  readonly description?: string;
  readonly args?: readonly ArgumentSpec[];
  readonly flags?: S;
  /** Shown after the flags in the command's help (output shapes, examples). */
  readonly epilog?: string;
  /** Resolves to the exit code (default 0). Throws a `UsageError` for exit 2, anything else for exit 1. */
  readonly run?: (ctx: CommandContext<S>) => Promise<number | void>;
  readonly subcommands?: readonly CommandSpec<any>[];
}

/** Declares a command, inferring its flags' types for `run`. */
export function defineCommand<S extends FlagSet>(spec: CommandSpec<S>): CommandSpec<S> {
  return spec;
}

/** A failure with its own exit code (the agent refused for good: 3); printed as one line like any other. */
export class ExitCodeError extends Error {
  override name = "ExitCodeError";
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
