-- OAuth authorizations in flight. The state parameter is stored only as a SHA-256 hash (a database read must not
-- yield a usable state) and the PKCE verifier encrypted; a row is consumed (deleted) by the one callback that
-- presents its state, so a replayed or forged callback finds nothing.
CREATE TABLE oauth_states (
    state_hash                bytea PRIMARY KEY,
    workspace_id              uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    code_verifier_ciphertext  bytea NOT NULL,
    redirect_uri              text NOT NULL,
    default_team_id           text NOT NULL DEFAULT '',
    default_priority          integer NOT NULL DEFAULT 0 CHECK (default_priority BETWEEN 0 AND 4),
    default_labels            text[] NOT NULL DEFAULT '{}',
    expires_at                timestamptz NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);

-- What linsync registered in Linear, so list and delete can show and undo it.
ALTER TABLE linear_webhooks
    ADD COLUMN url text NOT NULL DEFAULT '',
    ADD COLUMN resource_types text[] NOT NULL DEFAULT '{}';

-- History of a workspace's access to Linear: connects, webhook registrations and deletions, rotations, token
-- revocations, disconnects. Best-effort steps (deleting a webhook in Linear at disconnect) record their failures here
-- instead of failing the request. Details never carry a secret.
CREATE TABLE access_events (
    id             bigserial PRIMARY KEY,
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    connection_id  uuid REFERENCES linear_connections (id) ON DELETE SET NULL,
    kind           text NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('ok', 'failed')),
    detail         text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_events_workspace_idx ON access_events (workspace_id, id DESC);
