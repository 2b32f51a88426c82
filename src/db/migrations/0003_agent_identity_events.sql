-- Every change that ends an agent's identity is published on `agent_identity`, by the database
-- itself, so that whatever writes it (the control API, the CLI, another replica, an operator's
-- SQL) cuts that agent's live tunnels on every replica. The payload carries ids only:
--   {"kind":"agent","agent_id":…,"deleted":true}   an agent deleted (soft or hard)
--   {"kind":"agent","agent_id":…,"deleted":false}  an agent's token changed
--   {"kind":"workspace","workspace_id":…} a workspace deleted (soft or hard)
--   {"kind":"build","workspace_id":…,"build_id":…} a new build: older builds' agents are outdated
-- NOTIFY is sent at commit, so a listener that re-reads sees the change.

CREATE FUNCTION notify_agent_identity_agent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('agent_identity', json_build_object(
    'kind', 'agent', 'agent_id', OLD.id, 'deleted', CASE WHEN TG_OP = 'DELETE' THEN true ELSE NEW.deleted END)::text);
  RETURN NULL;
END;
$$;
CREATE TRIGGER workspace_agent_identity_update
  AFTER UPDATE OF deleted, auth_token ON workspace_agents
  FOR EACH ROW
  WHEN (OLD.deleted IS DISTINCT FROM NEW.deleted OR OLD.auth_token IS DISTINCT FROM NEW.auth_token)
  EXECUTE FUNCTION notify_agent_identity_agent();
CREATE TRIGGER workspace_agent_identity_delete
  AFTER DELETE ON workspace_agents
  FOR EACH ROW EXECUTE FUNCTION notify_agent_identity_agent();

CREATE FUNCTION notify_agent_identity_workspace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('agent_identity', json_build_object('kind', 'workspace', 'workspace_id', OLD.id)::text);
  RETURN NULL;
END;
$$;
CREATE TRIGGER workspace_identity_update
  AFTER UPDATE OF deleted ON workspaces
  FOR EACH ROW
  WHEN (NEW.deleted AND NOT OLD.deleted)
  EXECUTE FUNCTION notify_agent_identity_workspace();
CREATE TRIGGER workspace_identity_delete
  AFTER DELETE ON workspaces
  FOR EACH ROW EXECUTE FUNCTION notify_agent_identity_workspace();

CREATE FUNCTION notify_agent_identity_build() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('agent_identity', json_build_object('kind', 'build', 'workspace_id', NEW.workspace_id, 'build_id', NEW.id)::text);
  RETURN NULL;
END;
$$;
CREATE TRIGGER workspace_build_identity_insert
  AFTER INSERT ON workspace_builds
  FOR EACH ROW EXECUTE FUNCTION notify_agent_identity_build();
