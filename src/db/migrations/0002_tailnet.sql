-- Tailnet coordination state, shared by every replica, as Coder's HA coordinator keeps it.
-- The coordination tables are UNLOGGED: they describe live connections, which a crash ends
-- anyway, and they are rewritten on every node update.
--
-- Added by agentgate:
--   tailnet_peers.status 'disconnected' with tailnet_peers.disconnect_reason: a peer removed on
--     purpose (graceful disconnect, or dropped for a full queue) leaves a row that says why, so
--     peers on other replicas are told the same reason the local ones are;
--   tailnet_resume_token_key: the HMAC key of resume tokens, made once, read by every replica;
--   client_tokens: tokens the control API issues for clients that reach one agent or workspace.

CREATE TYPE tailnet_status AS ENUM ('ok', 'lost', 'disconnected');

CREATE UNLOGGED TABLE tailnet_coordinators (
  id uuid PRIMARY KEY,
  heartbeat_at timestamptz NOT NULL
);

-- One row per (peer, replica): during a reconnect a peer may have rows on two replicas.
CREATE UNLOGGED TABLE tailnet_peers (
  id uuid NOT NULL,
  coordinator_id uuid NOT NULL REFERENCES tailnet_coordinators (id) ON DELETE CASCADE,
  updated_at timestamptz NOT NULL,
  -- The peer's last node, protobuf binary of coder.tailnet.v2.Node; NULL until it sent one.
  node bytea,
  status tailnet_status NOT NULL,
  disconnect_reason text NOT NULL DEFAULT '',
  PRIMARY KEY (id, coordinator_id)
);
CREATE INDEX tailnet_peers_coordinator_id_idx ON tailnet_peers (coordinator_id);

-- Directed tunnels src → dst, written by the replica serving src. No foreign key to peers: a
-- client may add a tunnel to an agent that has not connected yet.
CREATE UNLOGGED TABLE tailnet_tunnels (
  coordinator_id uuid NOT NULL REFERENCES tailnet_coordinators (id) ON DELETE CASCADE,
  src_id uuid NOT NULL,
  dst_id uuid NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (coordinator_id, src_id, dst_id)
);
CREATE INDEX tailnet_tunnels_src_id_idx ON tailnet_tunnels (src_id);
CREATE INDEX tailnet_tunnels_dst_id_idx ON tailnet_tunnels (dst_id);

-- Logged: tokens signed with it must stay valid across a database restart.
CREATE TABLE tailnet_resume_token_key (
  id smallint PRIMARY KEY CHECK (id = 1),
  key bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE client_tokens (
  id uuid PRIMARY KEY,
  -- SHA-256 of the token; the token itself is shown once and never stored.
  token_hash bytea NOT NULL UNIQUE,
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  -- NULL: any agent of the workspace.
  agent_id uuid REFERENCES workspace_agents (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX client_tokens_workspace_id_idx ON client_tokens (workspace_id);
