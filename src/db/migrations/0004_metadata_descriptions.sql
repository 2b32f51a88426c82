-- Metadata descriptions (key, display name, script, interval, timeout, order: what the provisioner
-- declared) move to a logged table, so a PostgreSQL crash, which empties every UNLOGGED table,
-- keeps them. The latest values stay in the UNLOGGED workspace_agent_metadata: they are rewritten
-- on every report, and after a crash the agents report them again.

CREATE TABLE workspace_agent_metadata_descriptions (
  workspace_agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
  key varchar(127) NOT NULL,
  display_name varchar(127) NOT NULL,
  script varchar(65535) NOT NULL,
  -- Seconds, not nanoseconds (the manifest sends them as Durations whose nanos hold the seconds, as Coder does).
  timeout bigint NOT NULL,
  interval bigint NOT NULL,
  display_order integer NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace_agent_id, key)
);

INSERT INTO workspace_agent_metadata_descriptions (workspace_agent_id, key, display_name, script, timeout, interval, display_order)
SELECT workspace_agent_id, key, display_name, script, timeout, interval, display_order FROM workspace_agent_metadata;

-- Only the value of a declared key is kept: a value row goes with its description.
ALTER TABLE workspace_agent_metadata
  DROP CONSTRAINT workspace_agent_metadata_workspace_agent_id_fkey,
  DROP COLUMN display_name,
  DROP COLUMN script,
  DROP COLUMN timeout,
  DROP COLUMN interval,
  DROP COLUMN display_order,
  ADD CONSTRAINT workspace_agent_metadata_description_fkey FOREIGN KEY (workspace_agent_id, key)
    REFERENCES workspace_agent_metadata_descriptions (workspace_agent_id, key) ON DELETE CASCADE;
