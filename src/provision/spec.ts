import { z } from "zod";
import { APP_OPEN_IN, APP_SHARING_LEVELS, DISPLAY_APPS } from "../db/enums.js";
import { isAppSlug, MAX_AGENT_NAME, nameProblem } from "./names.js";

/**
 * The workspace spec: the agents of one build, described the way a provisioner (Terraform's
 * coder_agent, coder_app, coder_script, coder_metadata, coder_devcontainer) would. JSON (or YAML),
 * snake_case.
 *
 * {
 *   "agents": [{
 *     "name": "main", "os": "linux", "architecture": "amd64", "directory": "/home/coder",
 *     "env": {"EDITOR": "vim"}, "connection_timeout_seconds": 120,
 *     "troubleshooting_url": "", "motd_file": "", "display_apps": ["vscode", "web_terminal"],
 *     "apps": [{"slug": "code", "display_name": "Code", "url": "http://localhost:8080",
 *               "healthcheck": {"url": "http://localhost:8080/healthz", "interval_seconds": 5, "threshold": 6}}],
 *     "scripts": [{"display_name": "Install", "script": "make", "run_on_start": true, "timeout_seconds": 600}],
 *     "metadata": [{"key": "cpu", "display_name": "CPU", "script": "top -bn1", "interval_seconds": 10, "timeout_seconds": 3}],
 *     "devcontainers": [{"workspace_folder": "/src", "config_path": ".devcontainer/devcontainer.json"}],
 *     "resource_monitors": {"memory": {"enabled": true, "threshold": 80},
 *                           "volumes": [{"path": "/home", "enabled": true, "threshold": 90}]}
 *   }]
 * }
 *
 * Only `agents[].name` is required; everything else has the default given in the schema below.
 * Unknown fields are errors, so a misspelt option is not silently ignored.
 */

/** A spec that does not validate; the message names the field, e.g. `agents[0].apps[1].slug: …`. */
export class SpecError extends Error {
  override name = "SpecError";
}

const METADATA_KEY_MAX = 127;
/** The int columns' largest value. */
const MAX_INT = 2_147_483_647;

const WANT_INT = "want a non-negative integer";
const text = (opts: { nonEmpty?: boolean; max?: number } = {}) => {
  let s = z.string({ error: "want a string" });
  if (opts.nonEmpty) s = s.min(1, "must not be empty");
  if (opts.max !== undefined) s = s.max(opts.max, `longer than ${opts.max} characters`);
  return s;
};
const flag = z.boolean({ error: "want true or false" });
const count = z.number({ error: WANT_INT }).int(WANT_INT).min(0, WANT_INT).max(MAX_INT, WANT_INT);
const percent = count.max(100, "want a percentage (0–100)");
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `want one of ${values.join(", ")}` });
const list = <T extends z.ZodType>(item: T) => z.array(item, { error: "want an array" }).default([]);
const object = <S extends z.core.$ZodLooseShape>(shape: S) => z.strictObject(shape, { error: "want an object" });

/** Refuses two items of `items` with one `key`, naming the second. */
function unique<T>(ctx: z.RefinementCtx, items: readonly T[], key: (item: T) => string, path: (i: number) => (string | number)[], message: (value: string) => string): void {
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    const value = key(item);
    if (seen.has(value)) ctx.addIssue({ code: "custom", path: path(i), message: message(value) });
    seen.add(value);
  }
}

const appSchema = object({
  slug: text().refine(isAppSlug, { error: (iss) => `"${String(iss.input)}" must be lower-case letters, digits and single hyphens` }),
  display_name: text({ max: 64 }).default(""),
  icon: text({ max: 256 }).default(""),
  url: text().optional(),
  command: text().optional(),
  external: flag.default(false),
  subdomain: flag.default(false),
  hidden: flag.default(false),
  sharing_level: oneOf(APP_SHARING_LEVELS).default("owner"),
  open_in: oneOf(APP_OPEN_IN).default("slim-window"),
  display_group: text().optional(),
  tooltip: text({ max: 2048 }).default(""),
  healthcheck: object({
    url: text({ nonEmpty: true }),
    interval_seconds: count.default(5),
    threshold: count.default(3),
  }).optional(),
});

/** A script (coder_script); each gets its own log source, named after it. */
const scriptSchema = object({
  display_name: text({ nonEmpty: true, max: 127 }),
  icon: text().default(""),
  script: text({ nonEmpty: true }),
  cron: text().default(""),
  log_path: text().default(""),
  run_on_start: flag.default(false),
  run_on_stop: flag.default(false),
  start_blocks_login: flag.default(false),
  timeout_seconds: count.default(0),
});

/** A metadata description (coder_metadata / agent metadata block). */
const metadataSchema = object({
  key: text({ nonEmpty: true, max: METADATA_KEY_MAX }),
  display_name: text({ max: 127 }).default(""),
  script: text({ nonEmpty: true }),
  interval_seconds: count.default(10),
  timeout_seconds: count.default(3),
});

/** A devcontainer (coder_devcontainer). */
const devcontainerSchema = object({
  workspace_folder: text({ nonEmpty: true }),
  config_path: text().default(""),
  name: text().default(""),
});

const monitorSchema = object({ enabled: flag.default(true), threshold: percent });

const agentSchema = object({
  /** Unique within the build; letters, digits and single hyphens (Coder's agent name rule). */
  name: text().refine((n) => nameProblem(n, MAX_AGENT_NAME) === undefined, {
    error: (iss) => nameProblem(String(iss.input), MAX_AGENT_NAME),
  }),
  os: text({ nonEmpty: true, max: 64 }).default("linux"),
  architecture: text({ nonEmpty: true, max: 64 }).default("amd64"),
  /** "" is the agent's home. */
  directory: text({ max: 4096 }).default(""),
  env: z.record(z.string(), text(), { error: "want an object" }).default({}),
  /** Seconds before a never-connected agent shows "timeout"; 0 disables it. */
  connection_timeout_seconds: count.default(0),
  troubleshooting_url: text().default(""),
  motd_file: text().default(""),
  display_apps: z.array(oneOf(DISPLAY_APPS), { error: "want an array" }).default(() => [...DISPLAY_APPS]),
  apps: list(appSchema),
  scripts: list(scriptSchema),
  metadata: list(metadataSchema),
  devcontainers: list(devcontainerSchema),
  resource_monitors: object({
    memory: monitorSchema.optional(),
    volumes: list(object({ path: text({ nonEmpty: true }), enabled: flag.default(true), threshold: percent })),
  }).prefault({}),
}).superRefine((a, ctx) => {
  unique(ctx, a.apps, (app) => app.slug, (i) => ["apps", i, "slug"], (v) => `"${v}" is used twice`);
  unique(ctx, a.metadata, (m) => m.key, (i) => ["metadata", i, "key"], (v) => `"${v}" is used twice`);
  unique(ctx, a.resource_monitors.volumes, (v) => v.path, (i) => ["resource_monitors", "volumes", i, "path"], (v) => `"${v}" is used twice`);
});

const workspaceSpecSchema = object({ agents: list(agentSchema) }).superRefine((spec, ctx) => {
  unique(ctx, spec.agents, (a) => a.name, (i) => ["agents", i, "name"], agentNameTwice);
});

/** The agents of one build. */
export type WorkspaceSpec = z.output<typeof workspaceSpecSchema>;
/** One agent of the build, every default filled in. */
export type AgentSpec = z.output<typeof agentSchema>;
/** An app (coder_app). */
export type AppSpec = z.output<typeof appSchema>;
/** A script (coder_script). */
export type ScriptSpec = z.output<typeof scriptSchema>;
/** A metadata description. */
export type MetadataSpec = z.output<typeof metadataSchema>;
/** A devcontainer. */
export type DevcontainerSpec = z.output<typeof devcontainerSchema>;

/** Parses and validates a spec (already decoded from JSON or YAML). Throws {@link SpecError}. */
export function parseWorkspaceSpec(input: unknown): WorkspaceSpec {
  return parse(workspaceSpecSchema, input, "spec");
}

/** An agent with every default, for `--agent NAME`. */
export function defaultAgent(name: string): AgentSpec {
  return parse(agentSchema, { name }, "--agent");
}

/** Refuses two agents with one name (compared as the database does, exactly). */
export function checkUniqueAgentNames(agents: { name: string }[]): void {
  const seen = new Set<string>();
  for (const a of agents) {
    if (seen.has(a.name)) throw new SpecError(agentNameTwice(a.name));
    seen.add(a.name);
  }
}

function agentNameTwice(name: string): string {
  return `agent name "${name}" is used twice`;
}

function parse<T>(schema: z.ZodType<T>, input: unknown, root: "spec" | "--agent"): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
  const message = issue.code === "unrecognized_keys" ? "unknown field" : issue.message;
  // `--agent NAME` has one field: the flag names it well enough.
  throw new SpecError(`${root === "spec" ? fieldPath(path) : root}: ${message}`);
}

/** ["agents", 0, "apps", 1, "slug"] → "agents[0].apps[1].slug"; the root is "spec". */
function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "spec";
  return path.reduce<string>((at, key) => (typeof key === "number" ? `${at}[${key}]` : at === "" ? String(key) : `${at}.${String(key)}`), "");
}
