-- agentgate's schema for everything the Agent API stores. Tables, columns and enum values are
-- named as in Coder's schema, so queries and operators' habits carry over.
--
-- Left out, because agentgate has no such feature: organizations, templates, template versions,
-- provisioner jobs as rows, tasks, audit logs, API keys, groups. What Coder keeps NOT NULL for them
-- is nullable here:
--   workspaces.organization_id, workspaces.template_id,
--   workspace_builds.template_version_id, workspace_builds.template_version_preset_id,
--   workspace_agent_stats.template_id, connection_logs.organization_id.
-- workspace_builds.job_id / workspace_resources.job_id stay: there is no provisioner_jobs table,
-- but the job id remains the key that ties a build to its resources, as in Coder.
--
-- Added by agentgate:
--   workspace_agents.connection_generation: bumped on every connect, so a late write from an older
--     connection (its periodic refresh or its disconnect) can be recognised and skipped;
--   replicas: the running servers.

CREATE TYPE user_status AS ENUM ('active', 'suspended', 'dormant');
CREATE TYPE workspace_transition AS ENUM ('start', 'stop', 'delete');
CREATE TYPE build_reason AS ENUM (
  'initiator', 'autostart', 'autostop', 'dormancy', 'failedstop', 'autodelete',
  'dashboard', 'cli', 'ssh_connection', 'vscode_connection', 'jetbrains_connection'
);
CREATE TYPE workspace_agent_lifecycle_state AS ENUM (
  'created', 'starting', 'start_timeout', 'start_error', 'ready',
  'shutting_down', 'shutdown_timeout', 'shutdown_error', 'off'
);
CREATE TYPE workspace_agent_subsystem AS ENUM ('envbuilder', 'envbox', 'none', 'exectrace');
CREATE TYPE display_app AS ENUM ('vscode', 'vscode_insiders', 'web_terminal', 'ssh_helper', 'port_forwarding_helper');
CREATE TYPE agent_key_scope_enum AS ENUM ('all', 'no_user_data');
CREATE TYPE log_level AS ENUM ('trace', 'debug', 'info', 'warn', 'error');
CREATE TYPE workspace_app_health AS ENUM ('disabled', 'initializing', 'healthy', 'unhealthy');
CREATE TYPE app_sharing_level AS ENUM ('owner', 'authenticated', 'organization', 'public');
CREATE TYPE workspace_app_open_in AS ENUM ('tab', 'window', 'slim-window');
CREATE TYPE workspace_agent_script_timing_stage AS ENUM ('start', 'stop', 'cron');
CREATE TYPE workspace_agent_script_timing_status AS ENUM ('ok', 'exit_failure', 'timed_out', 'pipes_left_open');
CREATE TYPE workspace_agent_monitor_state AS ENUM ('OK', 'NOK');
CREATE TYPE connection_type AS ENUM ('ssh', 'vscode', 'jetbrains', 'reconnecting_pty', 'workspace_app', 'port_forwarding');
CREATE TYPE workspace_app_status_state AS ENUM ('working', 'complete', 'failure', 'idle');

CREATE TABLE users (
  id uuid PRIMARY KEY,
  email text NOT NULL DEFAULT '',
  username text NOT NULL CHECK (length(username) >= 1),
  name text NOT NULL DEFAULT '',
  avatar_url text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  status user_status NOT NULL DEFAULT 'active',
  rbac_roles text[] NOT NULL DEFAULT '{}',
  deleted boolean NOT NULL DEFAULT false,
  is_system boolean NOT NULL DEFAULT false,
  is_service_account boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX users_username_idx ON users (lower(username)) WHERE deleted = false;

CREATE TABLE workspaces (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Users are soft-deleted, never removed while they own workspaces.
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  organization_id uuid,
  template_id uuid,
  deleted boolean NOT NULL DEFAULT false,
  name varchar(64) NOT NULL,
  autostart_schedule text,
  ttl bigint,
  last_used_at timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
  dormant_at timestamptz,
  deleting_at timestamptz,
  automatic_updates text NOT NULL DEFAULT 'never',
  favorite boolean NOT NULL DEFAULT false,
  next_start_at timestamptz,
  group_acl jsonb NOT NULL DEFAULT '{}',
  user_acl jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX workspaces_owner_id_lower_idx ON workspaces (owner_id, lower(name)) WHERE deleted = false;

CREATE TABLE workspace_builds (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  template_version_id uuid,
  build_number integer NOT NULL,
  transition workspace_transition NOT NULL,
  initiator_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  provisioner_state bytea,
  job_id uuid NOT NULL UNIQUE,
  deadline timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
  max_deadline timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
  reason build_reason NOT NULL DEFAULT 'initiator',
  daily_cost integer NOT NULL DEFAULT 0,
  template_version_preset_id uuid,
  has_ai_task boolean,
  has_external_agent boolean,
  UNIQUE (workspace_id, build_number),
  CONSTRAINT workspace_builds_deadline_below_max_deadline
    CHECK ((deadline <> '0001-01-01 00:00:00+00' AND deadline <= max_deadline)
           OR max_deadline = '0001-01-01 00:00:00+00')
);

CREATE TABLE workspace_resources (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  job_id uuid NOT NULL REFERENCES workspace_builds (job_id) ON DELETE CASCADE,
  transition workspace_transition NOT NULL,
  type varchar(192) NOT NULL,
  name varchar(64) NOT NULL,
  hide boolean NOT NULL DEFAULT false,
  icon varchar(256) NOT NULL DEFAULT '',
  instance_type varchar(256),
  daily_cost integer NOT NULL DEFAULT 0,
  module_path text
);
CREATE INDEX workspace_resources_job_id_idx ON workspace_resources (job_id);

CREATE TABLE replicas (
  id uuid PRIMARY KEY,
  hostname text NOT NULL,
  started_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE workspace_agents (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  name varchar(64) NOT NULL,
  resource_id uuid NOT NULL REFERENCES workspace_resources (id) ON DELETE CASCADE,
  auth_token uuid NOT NULL,
  auth_instance_id varchar,
  first_connected_at timestamptz,
  last_connected_at timestamptz,
  disconnected_at timestamptz,
  -- No foreign key: replicas rows are pruned while agents keep the id of their last server.
  last_connected_replica_id uuid,
  connection_generation bigint NOT NULL DEFAULT 0,
  connection_timeout_seconds integer NOT NULL DEFAULT 0,
  architecture varchar(64) NOT NULL,
  operating_system varchar(64) NOT NULL,
  environment_variables jsonb,
  instance_metadata jsonb,
  resource_metadata jsonb,
  directory varchar(4096) NOT NULL DEFAULT '',
  expanded_directory varchar(4096) NOT NULL DEFAULT '',
  version text NOT NULL DEFAULT '',
  api_version text NOT NULL DEFAULT '',
  subsystems workspace_agent_subsystem[] DEFAULT '{}',
  lifecycle_state workspace_agent_lifecycle_state NOT NULL DEFAULT 'created',
  started_at timestamptz,
  ready_at timestamptz,
  logs_length integer NOT NULL DEFAULT 0,
  logs_overflowed boolean NOT NULL DEFAULT false,
  troubleshooting_url text NOT NULL DEFAULT '',
  motd_file text NOT NULL DEFAULT '',
  display_apps display_app[] DEFAULT '{vscode,vscode_insiders,web_terminal,ssh_helper,port_forwarding_helper}',
  display_order integer NOT NULL DEFAULT 0,
  parent_id uuid REFERENCES workspace_agents (id) ON DELETE CASCADE,
  api_key_scope agent_key_scope_enum NOT NULL DEFAULT 'all',
  deleted boolean NOT NULL DEFAULT false,
  -- BatchCreateLogs relies on this check to detect overflow: a batch that would pass the cap fails it.
  CONSTRAINT max_logs_length CHECK (logs_length <= 1048576),
  CONSTRAINT subsystems_not_none CHECK (NOT ('none'::workspace_agent_subsystem = ANY (subsystems)))
)
-- Every connected agent's row is rewritten each heartbeat. Free room on each page lets those
-- updates (of unindexed columns) be HOT: no index writes, about half the cost per row.
WITH (fillfactor = 80);
CREATE UNIQUE INDEX workspace_agents_auth_token_idx ON workspace_agents (auth_token);
CREATE INDEX workspace_agents_resource_id_idx ON workspace_agents (resource_id);
CREATE INDEX workspace_agents_parent_id_idx ON workspace_agents (parent_id);

-- Agent names are unique within a build (among agents not deleted). A trigger, as in Coder, since
-- the build is two joins away from the agent row.
CREATE FUNCTION check_workspace_agent_name_unique() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  build_job uuid;
BEGIN
  IF NEW.deleted THEN
    RETURN NEW;
  END IF;
  SELECT job_id INTO build_job FROM workspace_resources WHERE id = NEW.resource_id;
  IF EXISTS (
    SELECT 1
    FROM workspace_agents a
    JOIN workspace_resources r ON r.id = a.resource_id
    WHERE r.job_id = build_job AND a.name = NEW.name AND a.id <> NEW.id AND a.deleted = false
  ) THEN
    RAISE EXCEPTION 'workspace agent name "%" already exists in this workspace build', NEW.name
      USING ERRCODE = 'unique_violation', CONSTRAINT = 'workspace_agent_name_unique_trigger';
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER workspace_agent_name_unique_trigger
  BEFORE INSERT OR UPDATE OF name, resource_id, deleted ON workspace_agents
  FOR EACH ROW EXECUTE FUNCTION check_workspace_agent_name_unique();

CREATE TABLE workspace_apps (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  display_name varchar(64) NOT NULL DEFAULT '',
  icon varchar(256) NOT NULL DEFAULT '',
  command varchar(65534),
  url varchar(65534),
  healthcheck_url text NOT NULL DEFAULT '',
  healthcheck_interval integer NOT NULL DEFAULT 0,
  healthcheck_threshold integer NOT NULL DEFAULT 0,
  health workspace_app_health NOT NULL DEFAULT 'disabled',
  subdomain boolean NOT NULL DEFAULT false,
  sharing_level app_sharing_level NOT NULL DEFAULT 'owner',
  slug text NOT NULL,
  external boolean NOT NULL DEFAULT false,
  display_order integer NOT NULL DEFAULT 0,
  hidden boolean NOT NULL DEFAULT false,
  open_in workspace_app_open_in NOT NULL DEFAULT 'slim-window',
  display_group text,
  tooltip varchar(2048) NOT NULL DEFAULT '',
  UNIQUE (agent_id, slug)
);

CREATE TABLE workspace_agent_log_sources (
  workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  display_name varchar(127) NOT NULL,
  icon text NOT NULL DEFAULT '',
  PRIMARY KEY (workspace_agent_id, id)
);

CREATE SEQUENCE workspace_agent_startup_logs_id_seq;
-- UNLOGGED as in Coder: high write volume, and losing logs in a crash is acceptable.
CREATE UNLOGGED TABLE workspace_agent_logs (
  id bigint PRIMARY KEY DEFAULT nextval('workspace_agent_startup_logs_id_seq'),
  agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  output varchar(1024) NOT NULL,
  level log_level NOT NULL DEFAULT 'info',
  log_source_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'
);
ALTER SEQUENCE workspace_agent_startup_logs_id_seq OWNED BY workspace_agent_logs.id;
CREATE INDEX workspace_agent_logs_agent_id_id_idx ON workspace_agent_logs (agent_id, id);

CREATE TABLE workspace_agent_scripts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  log_source_id uuid NOT NULL,
  log_path text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  script text NOT NULL,
  cron text NOT NULL DEFAULT '',
  start_blocks_login boolean NOT NULL DEFAULT false,
  run_on_start boolean NOT NULL DEFAULT false,
  run_on_stop boolean NOT NULL DEFAULT false,
  timeout_seconds integer NOT NULL DEFAULT 0,
  display_name text NOT NULL DEFAULT ''
);
CREATE INDEX workspace_agent_scripts_agent_idx ON workspace_agent_scripts (workspace_agent_id);

CREATE TABLE workspace_agent_script_timings (
  script_id uuid NOT NULL REFERENCES workspace_agent_scripts (id) ON DELETE CASCADE,
  started_at timestamptz NOT NULL,
  ended_at timestamptz NOT NULL,
  exit_code integer NOT NULL,
  stage workspace_agent_script_timing_stage NOT NULL,
  status workspace_agent_script_timing_status NOT NULL,
  UNIQUE (script_id, started_at)
);

CREATE UNLOGGED TABLE workspace_agent_metadata (
  workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  display_name varchar(127) NOT NULL,
  key varchar(127) NOT NULL,
  script varchar(65535) NOT NULL,
  value varchar(65535) NOT NULL DEFAULT '',
  error varchar(65535) NOT NULL DEFAULT '',
  -- Seconds, not nanoseconds (the manifest sends them as Durations whose nanos hold the seconds, as Coder does).
  timeout bigint NOT NULL,
  interval bigint NOT NULL,
  collected_at timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
  display_order integer NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace_agent_id, key)
);

-- No foreign keys: stats are history that outlives agents and is written in large batches.
CREATE TABLE workspace_agent_stats (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  user_id uuid NOT NULL,
  agent_id uuid NOT NULL,
  workspace_id uuid NOT NULL,
  template_id uuid,
  connections_by_proto jsonb NOT NULL DEFAULT '{}',
  connection_count bigint NOT NULL DEFAULT 0,
  rx_packets bigint NOT NULL DEFAULT 0,
  rx_bytes bigint NOT NULL DEFAULT 0,
  tx_packets bigint NOT NULL DEFAULT 0,
  tx_bytes bigint NOT NULL DEFAULT 0,
  connection_median_latency_ms double precision NOT NULL DEFAULT -1,
  session_count_vscode bigint NOT NULL DEFAULT 0,
  session_count_jetbrains bigint NOT NULL DEFAULT 0,
  session_count_reconnecting_pty bigint NOT NULL DEFAULT 0,
  session_count_ssh bigint NOT NULL DEFAULT 0,
  usage boolean NOT NULL DEFAULT false,
  session_counts jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX workspace_agent_stats_agent_id_created_at_idx ON workspace_agent_stats (agent_id, created_at);
CREATE INDEX workspace_agent_stats_created_at_idx ON workspace_agent_stats (created_at);

CREATE TABLE workspace_agent_devcontainers (
  id uuid PRIMARY KEY,
  workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  workspace_folder text NOT NULL,
  config_path text NOT NULL DEFAULT '',
  name text NOT NULL DEFAULT '',
  subagent_id uuid REFERENCES workspace_agents (id) ON DELETE SET NULL
);
CREATE INDEX workspace_agent_devcontainers_agent_idx ON workspace_agent_devcontainers (workspace_agent_id);

CREATE TABLE workspace_agent_memory_resource_monitors (
  agent_id uuid PRIMARY KEY REFERENCES workspace_agents (id) ON DELETE CASCADE,
  enabled boolean NOT NULL,
  threshold integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  state workspace_agent_monitor_state NOT NULL DEFAULT 'OK',
  debounced_until timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00'
);

CREATE TABLE workspace_agent_volume_resource_monitors (
  agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  path text NOT NULL,
  enabled boolean NOT NULL,
  threshold integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  state workspace_agent_monitor_state NOT NULL DEFAULT 'OK',
  debounced_until timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
  PRIMARY KEY (agent_id, path)
);

CREATE TABLE connection_logs (
  id uuid PRIMARY KEY,
  connect_time timestamptz NOT NULL,
  organization_id uuid,
  workspace_owner_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  workspace_name text NOT NULL,
  agent_name text NOT NULL,
  agent_id uuid,
  type connection_type NOT NULL,
  ip inet,
  code integer,
  user_agent text,
  user_id uuid,
  slug_or_port text,
  connection_id uuid,
  disconnect_time timestamptz,
  disconnect_reason text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (connection_id, workspace_id, agent_name)
);
CREATE INDEX connection_logs_connect_time_idx ON connection_logs (connect_time DESC);
CREATE INDEX connection_logs_workspace_id_idx ON connection_logs (workspace_id);

CREATE TABLE workspace_app_statuses (
  id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  app_id uuid NOT NULL REFERENCES workspace_apps (id) ON DELETE CASCADE,
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  state workspace_app_status_state NOT NULL,
  message text NOT NULL,
  uri text
);
CREATE INDEX workspace_app_statuses_workspace_id_created_at_idx ON workspace_app_statuses (workspace_id, created_at DESC);
CREATE INDEX workspace_app_statuses_app_id_idx ON workspace_app_statuses (app_id);
