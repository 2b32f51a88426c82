import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  AppSpec_OpenInSchema,
  AppSpec_SharingLevelSchema,
  DisplayAppSchema,
  type WorkspaceSpec as WorkspaceSpecMessage,
  type WorkspaceSpecSchema,
} from "../../gen/agentgate/control/v1/control_pb.js";
import { APP_OPEN_IN, APP_SHARING_LEVELS, DISPLAY_APPS } from "../db/enums.js";
import { enumMapping, type EnumMapping } from "../protocol/enum-mapping.js";
import { parseWorkspaceSpec, SpecError, type WorkspaceSpec } from "../provision/spec.js";

/**
 * The control API's `WorkspaceSpec` message and the JSON spec of src/provision/spec.ts are one
 * thing in two encodings. A message is turned into the JSON form and validated by
 * `parseWorkspaceSpec`, so both paths share every default, limit and error message.
 */

const DISPLAY_APP_VALUES = enumMapping(DisplayAppSchema, DISPLAY_APPS);
const SHARING_LEVELS = enumMapping(AppSpec_SharingLevelSchema, APP_SHARING_LEVELS);
const OPEN_IN = enumMapping(AppSpec_OpenInSchema, APP_OPEN_IN);

/** Validates a spec message into a {@link WorkspaceSpec} with defaults filled in. Throws {@link SpecError}. */
export function specFromMessage(msg: WorkspaceSpecMessage | undefined): WorkspaceSpec {
  return parseWorkspaceSpec({
    agents: (msg?.agents ?? []).map((a, i) => {
      const at = `agents[${i}]`;
      const monitors = a.resourceMonitors;
      return {
        name: a.name,
        ...(a.os !== undefined ? { os: a.os } : {}),
        ...(a.architecture !== undefined ? { architecture: a.architecture } : {}),
        directory: a.directory,
        env: { ...a.env },
        connection_timeout_seconds: a.connectionTimeoutSeconds,
        troubleshooting_url: a.troubleshootingUrl,
        motd_file: a.motdFile,
        ...(a.displayApps ? { display_apps: a.displayApps.apps.map((d, j) => enumName(DISPLAY_APP_VALUES, d, `${at}.display_apps[${j}]`)) } : {}),
        apps: a.apps.map((app, j) => ({
          slug: app.slug,
          display_name: app.displayName,
          icon: app.icon,
          ...(app.url !== undefined ? { url: app.url } : {}),
          ...(app.command !== undefined ? { command: app.command } : {}),
          external: app.external,
          subdomain: app.subdomain,
          hidden: app.hidden,
          ...optionalEnum("sharing_level", SHARING_LEVELS, app.sharingLevel, `${at}.apps[${j}].sharing_level`),
          ...optionalEnum("open_in", OPEN_IN, app.openIn, `${at}.apps[${j}].open_in`),
          ...(app.displayGroup !== undefined ? { display_group: app.displayGroup } : {}),
          tooltip: app.tooltip,
          ...(app.healthcheck
            ? {
                healthcheck: {
                  url: app.healthcheck.url,
                  ...(app.healthcheck.intervalSeconds !== undefined ? { interval_seconds: app.healthcheck.intervalSeconds } : {}),
                  ...(app.healthcheck.threshold !== undefined ? { threshold: app.healthcheck.threshold } : {}),
                },
              }
            : {}),
        })),
        scripts: a.scripts.map((s) => ({
          display_name: s.displayName, icon: s.icon, script: s.script, cron: s.cron, log_path: s.logPath,
          run_on_start: s.runOnStart, run_on_stop: s.runOnStop, start_blocks_login: s.startBlocksLogin, timeout_seconds: s.timeoutSeconds,
        })),
        metadata: a.metadata.map((m) => ({
          key: m.key,
          display_name: m.displayName,
          script: m.script,
          ...(m.intervalSeconds !== undefined ? { interval_seconds: m.intervalSeconds } : {}),
          ...(m.timeoutSeconds !== undefined ? { timeout_seconds: m.timeoutSeconds } : {}),
        })),
        devcontainers: a.devcontainers.map((d) => ({ workspace_folder: d.workspaceFolder, config_path: d.configPath, name: d.name })),
        resource_monitors: {
          ...(monitors?.memory ? { memory: { enabled: monitors.memory.enabled ?? true, threshold: monitors.memory.threshold } } : {}),
          volumes: (monitors?.volumes ?? []).map((v) => ({ path: v.path, enabled: v.enabled ?? true, threshold: v.threshold })),
        },
      };
    }),
  });
}

/** The message form of a validated spec, for clients of the control API (the CLI). */
export function specToMessage(spec: WorkspaceSpec): MessageInitShape<typeof WorkspaceSpecSchema> {
  return {
    agents: spec.agents.map((a) => ({
      name: a.name,
      os: a.os,
      architecture: a.architecture,
      directory: a.directory,
      env: a.env,
      connectionTimeoutSeconds: a.connection_timeout_seconds,
      troubleshootingUrl: a.troubleshooting_url,
      motdFile: a.motd_file,
      displayApps: { apps: a.display_apps.map((d) => DISPLAY_APP_VALUES.toProto(d)!) },
      apps: a.apps.map((app) => ({
        slug: app.slug,
        displayName: app.display_name,
        icon: app.icon,
        url: app.url,
        command: app.command,
        external: app.external,
        subdomain: app.subdomain,
        hidden: app.hidden,
        sharingLevel: SHARING_LEVELS.toProto(app.sharing_level),
        openIn: OPEN_IN.toProto(app.open_in),
        displayGroup: app.display_group,
        tooltip: app.tooltip,
        ...(app.healthcheck
          ? { healthcheck: { url: app.healthcheck.url, intervalSeconds: app.healthcheck.interval_seconds, threshold: app.healthcheck.threshold } }
          : {}),
      })),
      scripts: a.scripts.map((s) => ({
        displayName: s.display_name, icon: s.icon, script: s.script, cron: s.cron, logPath: s.log_path,
        runOnStart: s.run_on_start, runOnStop: s.run_on_stop, startBlocksLogin: s.start_blocks_login, timeoutSeconds: s.timeout_seconds,
      })),
      metadata: a.metadata.map((m) => ({
        key: m.key, displayName: m.display_name, script: m.script, intervalSeconds: m.interval_seconds, timeoutSeconds: m.timeout_seconds,
      })),
      devcontainers: a.devcontainers.map((d) => ({ workspaceFolder: d.workspace_folder, configPath: d.config_path, name: d.name })),
      resourceMonitors: {
        ...(a.resource_monitors.memory ? { memory: a.resource_monitors.memory } : {}),
        volumes: a.resource_monitors.volumes,
      },
    })),
  };
}

/** The JSON name of an enum value; an unknown number is a spec error. */
function enumName<P extends number, K extends string>(mapping: EnumMapping<P, K>, value: P, at: string): K {
  const name = mapping.toDb(value);
  if (name === undefined) throw new SpecError(`${at}: unknown value ${value}`);
  return name;
}

/** `{ [field]: name }`, or nothing when the value is UNSPECIFIED (0), so the spec's default applies. */
function optionalEnum<F extends string, P extends number, K extends string>(field: F, mapping: EnumMapping<P, K>, value: P, at: string): { [Q in F]?: K } {
  return value === 0 ? {} : ({ [field]: enumName(mapping, value, at) } as { [Q in F]?: K });
}
