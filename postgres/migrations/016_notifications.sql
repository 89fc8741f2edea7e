-- Notifications (capability C6): per-workspace targets (a Slack incoming webhook, or a generic webhook that receives
-- a signed JSON event) and rules evaluated for every decoded Linear delivery. A target's URL is a secret (a Slack
-- webhook URL is its own credential): it is sealed like every other secret, shown by its last four characters.
CREATE TABLE notification_targets (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind               text NOT NULL CHECK (kind IN ('slack', 'webhook')),
    url_ciphertext     bytea NOT NULL,
    url_last4          text NOT NULL,
    secret_ciphertext  bytea,
    secret_last4       text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);
CREATE INDEX notification_targets_page_idx ON notification_targets (workspace_id, created_at DESC, id DESC);

CREATE TABLE notification_rules (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id           uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    enabled                boolean NOT NULL DEFAULT true,
    match                  jsonb NOT NULL,
    target_ids             uuid[] NOT NULL,
    template               text NOT NULL DEFAULT '',
    digest_minutes         integer NOT NULL DEFAULT 0 CHECK (digest_minutes BETWEEN 0 AND 1440),
    notify_on_own_changes  boolean NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);
CREATE INDEX notification_rules_page_idx ON notification_rules (workspace_id, created_at DESC, id DESC);

-- One row per message: a delivery's (or a digest window's) message of one rule to one target. The key is what makes
-- at most one message per (delivery, rule, target) across activity retries, workflow replays and dead-letter
-- replays: a send first claims its row, and a row already 'sent' sends nothing again.
CREATE TABLE notification_sends (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    delivery_id   text NOT NULL,
    rule_id       uuid NOT NULL,
    target_id     uuid NOT NULL,
    status        text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    http_status   integer NOT NULL DEFAULT 0,
    error         text NOT NULL DEFAULT '',
    first_try_at  timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    PRIMARY KEY (workspace_id, delivery_id, rule_id, target_id)
);

-- A digest rule's matches wait here until their window's message takes them.
CREATE TABLE notification_digest_items (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    rule_id       uuid NOT NULL REFERENCES notification_rules (id) ON DELETE CASCADE,
    delivery_id   text NOT NULL,
    event         jsonb NOT NULL,
    added_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, delivery_id)
);
