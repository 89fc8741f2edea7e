-- API tokens: shown once, stored as a SHA-256 hash, scoped, revocable, each bound to one workspace.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          text NOT NULL,
    scopes        text[] NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    token_last4   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_workspace_idx ON api_tokens (workspace_id);

-- A workspace's connection to Linear: a personal API key or OAuth tokens, envelope-encrypted, plus the defaults
-- used when linsync files issues. actor_user_id is the Linear user (or app user) linsync acts as, so changes it made
-- are recognised when they come back as webhooks.
CREATE TABLE linear_connections (
    id                        uuid PRIMARY KEY,
    workspace_id              uuid NOT NULL UNIQUE REFERENCES workspaces (id) ON DELETE CASCADE,
    organization_id           text NOT NULL,
    organization_name         text NOT NULL DEFAULT '',
    auth_kind                 text NOT NULL CHECK (auth_kind IN ('api_key', 'oauth')),
    credential_ciphertext     bytea NOT NULL,
    credential_last4          text NOT NULL,
    refresh_token_ciphertext  bytea,
    access_token_expires_at   timestamptz,
    oauth_scopes              text[] NOT NULL DEFAULT '{}',
    credential_version        integer NOT NULL DEFAULT 1,
    actor_user_id             text NOT NULL,
    actor_name                text NOT NULL DEFAULT '',
    default_team_id           text NOT NULL,
    default_priority          integer NOT NULL DEFAULT 0 CHECK (default_priority BETWEEN 0 AND 4),
    default_labels            text[] NOT NULL DEFAULT '{}',
    status                    text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'disconnected')),
    status_reason             text NOT NULL DEFAULT '',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX linear_connections_organization_idx ON linear_connections (organization_id);

ALTER TABLE linear_webhooks
    ADD COLUMN connection_id uuid REFERENCES linear_connections (id) ON DELETE SET NULL,
    ADD COLUMN managed boolean NOT NULL DEFAULT false; -- true: linsync created it in Linear and may delete it
