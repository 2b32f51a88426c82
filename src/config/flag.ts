import type { z } from "zod";
import { UsageError } from "./usage-error.js";

/**
 * How a flag's value is read: from text (the command line, the environment, the declared default)
 * and from a config file, where YAML and JSON give numbers, booleans and lists as such.
 */
export interface FlagKind<T> {
  /** Parses the text form; its issue messages say what is wanted ("one of a, b"). */
  readonly text: z.ZodType<T>;
  /** Validates a config file's value. */
  readonly file: z.ZodType<T>;
  /** A switch takes no value on the command line: given means true. */
  readonly isSwitch?: true;
  /** Repeatable on the command line; a comma-separated list in the environment. */
  readonly repeatable?: true;
  /** What a shell completes after the flag: these words, or file names. */
  readonly complete?: readonly string[] | "file";
  /** The value's name in help, e.g. DURATION; a kind-wide default for {@link FlagOptions.placeholder}. */
  readonly placeholder?: string;
}

/** Everything said about one flag, in one place: parsing, defaults, environment and help come from it. */
export interface FlagOptions {
  /** One line of help. */
  readonly help: string;
  /** Its environment variable; default `AGENTGATE_` and the name in upper snake case. */
  readonly env?: string;
  /** The value's name in help; default the kind's. */
  readonly placeholder?: string;
  /** The value when none is given, as one would type it: it is parsed like any other. */
  readonly default?: string;
  /** Help's words for a default computed from other flags, e.g. "2 × --agent-update-interval". */
  readonly defaultNote?: string;
  /** Absent everywhere is a usage error. */
  readonly required?: true;
  /** A one-letter alias on the command line. */
  readonly short?: string;
  /** Never echoed in an error (tokens, URLs that may hold a password). */
  readonly secret?: true;
}

/** A declared flag; its name is its key in a {@link FlagSet}. */
export interface Flag<T = unknown> extends FlagOptions {
  readonly kind: FlagKind<T>;
}

/** Declares a flag of `kind`. */
export function flag<T, const O extends FlagOptions>(kind: FlagKind<T>, options: O): Flag<T> & O {
  return { kind, ...options };
}

/** Flags by name: the name is the long option (`--name`) and the config file's key. */
export type FlagSet = Record<string, Flag<any>>;

/** What a flag resolves to: with a default or required, always a value; a switch, true or false. */
export type FlagValue<F> = F extends Flag<infer T>
  ? F extends { default: string } | { required: true }
    ? T
    : T extends boolean
      ? boolean
      : T | undefined
  : never;

/** The resolved values of a flag set, keyed by flag name. */
export type FlagValues<S extends FlagSet> = { -readonly [K in keyof S]: FlagValue<S[K]> };

/** Where a resolved value came from. */
export type FlagSource = "command line" | "environment" | "config file" | "default";

/** A config file's values, already validated against the flags' kinds. */
export interface ConfigFileValues {
  readonly path: string;
  readonly values: Readonly<Record<string, unknown>>;
}

/** What flags are resolved from, in order of precedence. */
export interface FlagInputs {
  /** Command-line values: text, a list of texts for repeatable flags, true for switches. */
  readonly cli?: Readonly<Record<string, string | readonly string[] | boolean | undefined>>;
  /** Environment variables; an empty one counts as unset. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly file?: ConfigFileValues;
}

/** Resolved values and where each came from (undefined: from nowhere). */
export interface ResolvedFlags<S extends FlagSet> {
  readonly values: FlagValues<S>;
  readonly sources: { readonly [K in keyof S]: FlagSource | undefined };
}

/** The flag's environment variable. */
export function envName(name: string, f: FlagOptions): string {
  return f.env ?? `AGENTGATE_${name.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * Resolves every flag of `flags`: the command line over the environment over the config file over
 * the default. Throws {@link UsageError} naming the flag and where its bad value came from.
 */
export function resolveFlags<S extends FlagSet>(flags: S, inputs: FlagInputs): ResolvedFlags<S> {
  const values: Record<string, unknown> = {};
  const sources: Record<string, FlagSource | undefined> = {};
  for (const [name, f] of Object.entries(flags)) {
    const [value, source] = resolveOne(name, f, inputs);
    values[name] = value;
    sources[name] = source;
  }
  return { values: values as FlagValues<S>, sources: sources as ResolvedFlags<S>["sources"] };
}

function resolveOne(name: string, f: Flag, inputs: FlagInputs): [unknown, FlagSource | undefined] {
  const cli = inputs.cli?.[name];
  if (cli !== undefined) {
    // Text goes through the text form; a switch's true and a repeated flag's list are values already.
    const schema = typeof cli === "string" ? f.kind.text : f.kind.file;
    return [parse(schema, cli, (why) => invalid(`--${name}`, " ", cli, why, f)), "command line"];
  }
  const env = envName(name, f);
  const fromEnv = inputs.env?.[env];
  if (fromEnv !== undefined && fromEnv !== "") {
    return [parse(f.kind.text, fromEnv, (why) => invalid(env, "=", fromEnv, why, f)), "environment"];
  }
  const file = inputs.file;
  if (file !== undefined && file.values[name] !== undefined) return [file.values[name], "config file"];
  if (f.default !== undefined) {
    return [parse(f.kind.text, f.default, (why) => new Error(`flag --${name}: its default ${f.default} is invalid (${why})`)), "default"];
  }
  if (f.required) throw new UsageError(`--${name} is required (or set ${env})`);
  return [f.kind.isSwitch ? false : undefined, undefined];
}

function parse<T>(schema: z.ZodType<T>, input: unknown, error: (why: string) => Error): T {
  const r = schema.safeParse(input);
  if (!r.success) throw error(r.error.issues[0]?.message ?? "invalid");
  return r.data;
}

/** "invalid --log-level bogus (one of …)"; a secret's value is never shown. */
function invalid(what: string, separator: string, value: unknown, why: string, f: FlagOptions): UsageError {
  if (f.secret) return new UsageError(`invalid ${what}: ${why}`);
  return new UsageError(`invalid ${what}${separator}${typeof value === "string" ? value : JSON.stringify(value)} (${why})`);
}

/** The message of a config file's bad value: "invalid log-level bogus in agentgate.yaml (one of …)". */
export function invalidInFile(path: string, name: string, value: unknown, why: string, f: FlagOptions | undefined): UsageError {
  if (f?.secret) return new UsageError(`invalid ${name} in ${path}: ${why}`);
  return new UsageError(`invalid ${name} ${typeof value === "string" ? value : JSON.stringify(value)} in ${path} (${why})`);
}
