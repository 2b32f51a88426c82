/**
 * Postgres enum types of the schema as TypeScript unions, each with the list of its values for
 * validation. Names and values are Coder's, as the migration creates them.
 */

/** `workspace_agent_lifecycle_state`. */
export const LIFECYCLE_STATES = [
  "created", "starting", "start_timeout", "start_error", "ready",
  "shutting_down", "shutdown_timeout", "shutdown_error", "off",
] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

/** `workspace_agent_subsystem` (`none` is forbidden in rows by a CHECK). */
export const AGENT_SUBSYSTEMS = ["envbuilder", "envbox", "none", "exectrace"] as const;
export type AgentSubsystem = (typeof AGENT_SUBSYSTEMS)[number];

/** `display_app`. */
export const DISPLAY_APPS = ["vscode", "vscode_insiders", "web_terminal", "ssh_helper", "port_forwarding_helper"] as const;
export type DisplayApp = (typeof DISPLAY_APPS)[number];

/** `agent_key_scope_enum`. */
export const AGENT_KEY_SCOPES = ["all", "no_user_data"] as const;
export type AgentKeyScope = (typeof AGENT_KEY_SCOPES)[number];

/** `workspace_transition`. */
export const WORKSPACE_TRANSITIONS = ["start", "stop", "delete"] as const;
export type WorkspaceTransition = (typeof WORKSPACE_TRANSITIONS)[number];

/** `build_reason`. */
export const BUILD_REASONS = [
  "initiator", "autostart", "autostop", "dormancy", "failedstop", "autodelete",
  "dashboard", "cli", "ssh_connection", "vscode_connection", "jetbrains_connection",
] as const;
export type BuildReason = (typeof BUILD_REASONS)[number];

/** `user_status`. */
export const USER_STATUSES = ["active", "suspended", "dormant"] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

/** `log_level`. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `workspace_app_health`. */
export const APP_HEALTHS = ["disabled", "initializing", "healthy", "unhealthy"] as const;
export type AppHealth = (typeof APP_HEALTHS)[number];

/** `app_sharing_level`. */
export const APP_SHARING_LEVELS = ["owner", "authenticated", "organization", "public"] as const;
export type AppSharingLevel = (typeof APP_SHARING_LEVELS)[number];

/** `workspace_app_open_in`. */
export const APP_OPEN_IN = ["tab", "window", "slim-window"] as const;
export type AppOpenIn = (typeof APP_OPEN_IN)[number];

/** `workspace_agent_script_timing_stage`. */
export const SCRIPT_TIMING_STAGES = ["start", "stop", "cron"] as const;
export type ScriptTimingStage = (typeof SCRIPT_TIMING_STAGES)[number];

/** `workspace_agent_script_timing_status`. */
export const SCRIPT_TIMING_STATUSES = ["ok", "exit_failure", "timed_out", "pipes_left_open"] as const;
export type ScriptTimingStatus = (typeof SCRIPT_TIMING_STATUSES)[number];

/** `workspace_agent_monitor_state`. */
export const MONITOR_STATES = ["OK", "NOK"] as const;
export type MonitorState = (typeof MONITOR_STATES)[number];

/** `connection_type`. */
export const CONNECTION_TYPES = ["ssh", "vscode", "jetbrains", "reconnecting_pty", "workspace_app", "port_forwarding"] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

/** `workspace_app_status_state`. */
export const APP_STATUS_STATES = ["working", "complete", "failure", "idle"] as const;
export type AppStatusState = (typeof APP_STATUS_STATES)[number];

/** The nil UUID: Coder's "no value" for uuid columns such as `workspace_agent_logs.log_source_id`. */
export const NIL_UUID = "00000000-0000-0000-0000-000000000000";

/** Coder's zero time (`0001-01-01`), the default of deadline-like columns. */
export const ZERO_TIME = new Date("0001-01-01T00:00:00Z");
