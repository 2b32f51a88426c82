import {
  APP_OPEN_IN,
  APP_SHARING_LEVELS,
  DISPLAY_APPS,
  type AppOpenIn,
  type AppSharingLevel,
  type DisplayApp,
} from "../db/enums.js";
import { isAppSlug, MAX_AGENT_NAME, nameProblem } from "./names.js";

/**
 * The workspace spec: the agents of one build, described the way a provisioner (Terraform's
 * coder_agent, coder_app, coder_script, coder_metadata, coder_devcontainer) would. JSON, snake_case.
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
 * Only `agents[].name` is required; everything else has the default given below.
 */
export interface WorkspaceSpec {
  agents: AgentSpec[];
}

/** One agent of the build. */
export interface AgentSpec {
  /** Unique within the build; letters, digits and single hyphens (Coder's agent name rule). */
  name: string;
  /** Default "linux". */
  os: string;
  /** Default "amd64". */
  architecture: string;
  /** Default "" (the agent's home). */
  directory: string;
  /** Default {}. */
  env: Record<string, string>;
  /** Seconds before a never-connected agent shows "timeout"; 0 (default) disables it. */
  connection_timeout_seconds: number;
  troubleshooting_url: string;
  motd_file: string;
  /** Default: all five. */
  display_apps: DisplayApp[];
  apps: AppSpec[];
  scripts: ScriptSpec[];
  metadata: MetadataSpec[];
  devcontainers: DevcontainerSpec[];
  resource_monitors: {
    memory?: { enabled: boolean; threshold: number };
    volumes: { path: string; enabled: boolean; threshold: number }[];
  };
}

/** An app (coder_app). */
export interface AppSpec {
  slug: string;
  display_name: string;
  icon: string;
  url?: string;
  command?: string;
  external: boolean;
  subdomain: boolean;
  hidden: boolean;
  sharing_level: AppSharingLevel;
  open_in: AppOpenIn;
  display_group?: string;
  tooltip: string;
  healthcheck?: { url: string; interval_seconds: number; threshold: number };
}

/** A script (coder_script); each gets its own log source, named after it. */
export interface ScriptSpec {
  display_name: string;
  icon: string;
  script: string;
  cron: string;
  log_path: string;
  run_on_start: boolean;
  run_on_stop: boolean;
  start_blocks_login: boolean;
  timeout_seconds: number;
}

/** A metadata description (coder_metadata / agent metadata block). */
export interface MetadataSpec {
  key: string;
  display_name: string;
  script: string;
  interval_seconds: number;
  timeout_seconds: number;
}

/** A devcontainer (coder_devcontainer). */
export interface DevcontainerSpec {
  workspace_folder: string;
  config_path: string;
  name: string;
}

/** A spec that does not validate; the message names the field, e.g. `agents[0].apps[1].slug: …`. */
export class SpecError extends Error {
  override name = "SpecError";
}

const METADATA_KEY_MAX = 127;

/** An agent with every default, for `--agent NAME`. */
export function defaultAgent(name: string): AgentSpec {
  return parseAgent({ name }, `--agent ${name}`);
}

/** Parses and validates a spec (already JSON-decoded). Throws {@link SpecError}. */
export function parseWorkspaceSpec(input: unknown): WorkspaceSpec {
  const root = object(input, "spec");
  known(root, ["agents"], "spec");
  const agents = array(root.agents ?? [], "agents").map((a, i) => parseAgent(a, `agents[${i}]`));
  checkUniqueAgentNames(agents);
  return { agents };
}

/** Refuses two agents with one name (compared as the database does, exactly). */
export function checkUniqueAgentNames(agents: { name: string }[]): void {
  const seen = new Set<string>();
  for (const a of agents) {
    if (seen.has(a.name)) throw new SpecError(`agent name "${a.name}" is used twice`);
    seen.add(a.name);
  }
}

function parseAgent(input: unknown, at: string): AgentSpec {
  const o = object(input, at);
  known(o, ["name", "os", "architecture", "directory", "env", "connection_timeout_seconds", "troubleshooting_url", "motd_file", "display_apps", "apps", "scripts", "metadata", "devcontainers", "resource_monitors"], at);
  const name = str(o.name, `${at}.name`);
  const problem = nameProblem(name, MAX_AGENT_NAME);
  if (problem !== undefined) throw new SpecError(`${at}.name: ${problem}`);
  const env = object(o.env ?? {}, `${at}.env`);
  for (const [k, v] of Object.entries(env)) str(v, `${at}.env.${k}`);
  const apps = array(o.apps ?? [], `${at}.apps`).map((x, i) => parseApp(x, `${at}.apps[${i}]`));
  const slugs = new Set<string>();
  for (const [i, app] of apps.entries()) {
    if (slugs.has(app.slug)) throw new SpecError(`${at}.apps[${i}].slug: "${app.slug}" is used twice`);
    slugs.add(app.slug);
  }
  const metadata = array(o.metadata ?? [], `${at}.metadata`).map((x, i) => parseMetadata(x, `${at}.metadata[${i}]`));
  const keys = new Set<string>();
  for (const [i, m] of metadata.entries()) {
    if (keys.has(m.key)) throw new SpecError(`${at}.metadata[${i}].key: "${m.key}" is used twice`);
    keys.add(m.key);
  }
  const monitors = object(o.resource_monitors ?? {}, `${at}.resource_monitors`);
  known(monitors, ["memory", "volumes"], `${at}.resource_monitors`);
  const volumes = array(monitors.volumes ?? [], `${at}.resource_monitors.volumes`).map((v, i) => {
    const p = `${at}.resource_monitors.volumes[${i}]`;
    const vo = object(v, p);
    known(vo, ["path", "enabled", "threshold"], p);
    return { path: str(vo.path, `${p}.path`, { nonEmpty: true }), enabled: bool(vo.enabled ?? true, `${p}.enabled`), threshold: percent(vo.threshold, `${p}.threshold`) };
  });
  const paths = new Set<string>();
  for (const [i, v] of volumes.entries()) {
    if (paths.has(v.path)) throw new SpecError(`${at}.resource_monitors.volumes[${i}].path: "${v.path}" is used twice`);
    paths.add(v.path);
  }
  let memory: { enabled: boolean; threshold: number } | undefined;
  if (monitors.memory !== undefined) {
    const p = `${at}.resource_monitors.memory`;
    const mo = object(monitors.memory, p);
    known(mo, ["enabled", "threshold"], p);
    memory = { enabled: bool(mo.enabled ?? true, `${p}.enabled`), threshold: percent(mo.threshold, `${p}.threshold`) };
  }
  return {
    name,
    os: str(o.os ?? "linux", `${at}.os`, { nonEmpty: true, max: 64 }),
    architecture: str(o.architecture ?? "amd64", `${at}.architecture`, { nonEmpty: true, max: 64 }),
    directory: str(o.directory ?? "", `${at}.directory`, { max: 4096 }),
    env: env as Record<string, string>,
    connection_timeout_seconds: int(o.connection_timeout_seconds ?? 0, `${at}.connection_timeout_seconds`),
    troubleshooting_url: str(o.troubleshooting_url ?? "", `${at}.troubleshooting_url`),
    motd_file: str(o.motd_file ?? "", `${at}.motd_file`),
    display_apps: array(o.display_apps ?? [...DISPLAY_APPS], `${at}.display_apps`).map((d, i) => oneOf(d, DISPLAY_APPS, `${at}.display_apps[${i}]`)),
    apps,
    scripts: array(o.scripts ?? [], `${at}.scripts`).map((x, i) => parseScript(x, `${at}.scripts[${i}]`)),
    metadata,
    devcontainers: array(o.devcontainers ?? [], `${at}.devcontainers`).map((x, i) => {
      const p = `${at}.devcontainers[${i}]`;
      const d = object(x, p);
      known(d, ["workspace_folder", "config_path", "name"], p);
      return { workspace_folder: str(d.workspace_folder, `${p}.workspace_folder`, { nonEmpty: true }), config_path: str(d.config_path ?? "", `${p}.config_path`), name: str(d.name ?? "", `${p}.name`) };
    }),
    resource_monitors: { ...(memory ? { memory } : {}), volumes },
  };
}

function parseApp(input: unknown, at: string): AppSpec {
  const o = object(input, at);
  known(o, ["slug", "display_name", "icon", "url", "command", "external", "subdomain", "hidden", "sharing_level", "open_in", "display_group", "tooltip", "healthcheck"], at);
  const slug = str(o.slug, `${at}.slug`);
  if (!isAppSlug(slug)) throw new SpecError(`${at}.slug: "${slug}" must be lower-case letters, digits and single hyphens`);
  let healthcheck: AppSpec["healthcheck"];
  if (o.healthcheck !== undefined) {
    const h = object(o.healthcheck, `${at}.healthcheck`);
    known(h, ["url", "interval_seconds", "threshold"], `${at}.healthcheck`);
    healthcheck = {
      url: str(h.url, `${at}.healthcheck.url`, { nonEmpty: true }),
      interval_seconds: int(h.interval_seconds ?? 5, `${at}.healthcheck.interval_seconds`),
      threshold: int(h.threshold ?? 3, `${at}.healthcheck.threshold`),
    };
  }
  const app: AppSpec = {
    slug,
    display_name: str(o.display_name ?? "", `${at}.display_name`, { max: 64 }),
    icon: str(o.icon ?? "", `${at}.icon`, { max: 256 }),
    external: bool(o.external ?? false, `${at}.external`),
    subdomain: bool(o.subdomain ?? false, `${at}.subdomain`),
    hidden: bool(o.hidden ?? false, `${at}.hidden`),
    sharing_level: oneOf(o.sharing_level ?? "owner", APP_SHARING_LEVELS, `${at}.sharing_level`),
    open_in: oneOf(o.open_in ?? "slim-window", APP_OPEN_IN, `${at}.open_in`),
    tooltip: str(o.tooltip ?? "", `${at}.tooltip`, { max: 2048 }),
  };
  if (o.url !== undefined) app.url = str(o.url, `${at}.url`);
  if (o.command !== undefined) app.command = str(o.command, `${at}.command`);
  if (o.display_group !== undefined) app.display_group = str(o.display_group, `${at}.display_group`);
  if (healthcheck) app.healthcheck = healthcheck;
  return app;
}

function parseScript(input: unknown, at: string): ScriptSpec {
  const o = object(input, at);
  known(o, ["display_name", "icon", "script", "cron", "log_path", "run_on_start", "run_on_stop", "start_blocks_login", "timeout_seconds"], at);
  return {
    display_name: str(o.display_name, `${at}.display_name`, { nonEmpty: true, max: 127 }),
    icon: str(o.icon ?? "", `${at}.icon`),
    script: str(o.script, `${at}.script`, { nonEmpty: true }),
    cron: str(o.cron ?? "", `${at}.cron`),
    log_path: str(o.log_path ?? "", `${at}.log_path`),
    run_on_start: bool(o.run_on_start ?? false, `${at}.run_on_start`),
    run_on_stop: bool(o.run_on_stop ?? false, `${at}.run_on_stop`),
    start_blocks_login: bool(o.start_blocks_login ?? false, `${at}.start_blocks_login`),
    timeout_seconds: int(o.timeout_seconds ?? 0, `${at}.timeout_seconds`),
  };
}

function parseMetadata(input: unknown, at: string): MetadataSpec {
  const o = object(input, at);
  known(o, ["key", "display_name", "script", "interval_seconds", "timeout_seconds"], at);
  return {
    key: str(o.key, `${at}.key`, { nonEmpty: true, max: METADATA_KEY_MAX }),
    display_name: str(o.display_name ?? "", `${at}.display_name`, { max: 127 }),
    script: str(o.script, `${at}.script`, { nonEmpty: true }),
    interval_seconds: int(o.interval_seconds ?? 10, `${at}.interval_seconds`),
    timeout_seconds: int(o.timeout_seconds ?? 3, `${at}.timeout_seconds`),
  };
}

function object(v: unknown, at: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new SpecError(`${at}: want an object`);
  return v as Record<string, unknown>;
}

/** Unknown fields are errors, so a misspelt option is not silently ignored. */
function known(o: Record<string, unknown>, fields: string[], at: string): void {
  for (const k of Object.keys(o)) if (!fields.includes(k)) throw new SpecError(`${at}.${k}: unknown field`);
}

function array(v: unknown, at: string): unknown[] {
  if (!Array.isArray(v)) throw new SpecError(`${at}: want an array`);
  return v;
}

function str(v: unknown, at: string, opts: { nonEmpty?: boolean; max?: number } = {}): string {
  if (typeof v !== "string") throw new SpecError(`${at}: want a string`);
  if (opts.nonEmpty && v === "") throw new SpecError(`${at}: must not be empty`);
  if (opts.max !== undefined && v.length > opts.max) throw new SpecError(`${at}: longer than ${opts.max} characters`);
  return v;
}

function bool(v: unknown, at: string): boolean {
  if (typeof v !== "boolean") throw new SpecError(`${at}: want true or false`);
  return v;
}

/** A non-negative integer that fits the int columns. */
function int(v: unknown, at: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 2_147_483_647) throw new SpecError(`${at}: want a non-negative integer`);
  return v;
}

function percent(v: unknown, at: string): number {
  const n = int(v, at);
  if (n > 100) throw new SpecError(`${at}: want a percentage (0–100)`);
  return n;
}

function oneOf<T extends string>(v: unknown, values: readonly T[], at: string): T {
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) throw new SpecError(`${at}: want one of ${values.join(", ")}`);
  return v as T;
}
