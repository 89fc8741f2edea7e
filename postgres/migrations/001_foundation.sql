-- Workspaces are the tenants of linsync. Credentials, tokens and connections hang off them.
CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A Linear webhook that posts to linsync. Inbound deliveries are matched by workspace (path) or by Linear
-- organization (and team, when several share one organization). Secrets are envelope-encrypted; the previous secret
-- stays valid until previous_secret_expires_at so a rotation never drops a delivery in flight.
CREATE TABLE linear_webhooks (
    id                          uuid PRIMARY KEY,
    workspace_id                uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    organization_id             text NOT NULL,
    team_id                     text,
    linear_webhook_id           text,
    secret_ciphertext           bytea NOT NULL,
    secret_last4                text NOT NULL,
    previous_secret_ciphertext  bytea,
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX linear_webhooks_organization_idx ON linear_webhooks (organization_id);
CREATE INDEX linear_webhooks_workspace_idx ON linear_webhooks (workspace_id);

-- One row per Linear delivery, written by the delivery's workflow. The primary key makes recording idempotent even
-- after Temporal's retention has forgotten the workflow ID.
CREATE TABLE webhook_deliveries (
    delivery_id        uuid PRIMARY KEY,
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    organization_id    text NOT NULL DEFAULT '',
    event_type         text NOT NULL,
    action             text NOT NULL,
    entity_id          text NOT NULL DEFAULT '',
    webhook_id         text NOT NULL DEFAULT '',
    webhook_timestamp  timestamptz,
    workflow_id        text NOT NULL,
    run_id             text NOT NULL DEFAULT '',
    outcome            text NOT NULL CHECK (outcome IN ('processed', 'ignored', 'unknown_type', 'failed')),
    detail             text NOT NULL DEFAULT '',
    received_at        timestamptz NOT NULL,
    processed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_workspace_idx ON webhook_deliveries (workspace_id, received_at DESC);
