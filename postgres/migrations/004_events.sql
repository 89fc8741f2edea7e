-- Monitoring events filed as Linear issues (capability C4).

-- Per-workspace settings of event filing; a missing row means the defaults (see postgres.DefaultEventSettings).
CREATE TABLE event_settings (
    workspace_id                uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    title_prefix                text NOT NULL CHECK (length(title_prefix) BETWEEN 1 AND 40),
    broken_link_window_seconds  integer NOT NULL CHECK (broken_link_window_seconds BETWEEN 60 AND 2592000),
    creation_cap_per_hour       integer NOT NULL CHECK (creation_cap_per_hour BETWEEN 0 AND 10000),
    tag_labels                  text[] NOT NULL,
    debounce_ms                 integer NOT NULL CHECK (debounce_ms BETWEEN 0 AND 600000),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- The ordered routing rules of a workspace, replaced as a whole, evaluated top-down.
CREATE TABLE routing_rules (
    workspace_id  uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    rules         jsonb NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per accepted idempotency key, claimed by the event's workflow run: it keeps a resubmitted event a
-- duplicate after Temporal's retention has forgotten the workflow ID.
CREATE TABLE event_receipts (
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    idempotency_key  text NOT NULL,
    event_type       text NOT NULL,
    workflow_id      text NOT NULL,
    run_id           text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (workspace_id, idempotency_key)
);

-- One row per Linear issue linsync files (or would have filed, when the hourly cap sent its events to a digest).
-- id is the Linear issue id, chosen by linsync and stored before issueCreate, so a retried create converges.
CREATE TABLE filed_issues (
    id                 uuid PRIMARY KEY,
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind               text NOT NULL,
    dedup_key          text NOT NULL,
    window_start       timestamptz NOT NULL,
    window_end         timestamptz,
    team_id            text NOT NULL,
    rule_index         integer NOT NULL,
    label_names        text[] NOT NULL,
    priority           integer NOT NULL CHECK (priority BETWEEN 0 AND 4),
    status             text NOT NULL CHECK (status IN ('pending', 'created', 'capped')),
    digest_issue_id    uuid,
    previous_issue_id  uuid REFERENCES filed_issues (id) ON DELETE SET NULL,
    identifier         text NOT NULL DEFAULT '',
    url                text NOT NULL DEFAULT '',
    title              text NOT NULL DEFAULT '',
    applied_hash       text NOT NULL DEFAULT '',
    applied_labels     text[] NOT NULL DEFAULT '{}',
    entry_count        integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, dedup_key, window_start)
);
CREATE INDEX filed_issues_list_idx ON filed_issues (workspace_id, created_at DESC, id DESC);

-- What an issue is about: the broken links of a host, the events of a digest, a click threshold's triggers.
-- entry_key dedupes (a repeated link changes nothing); seq keeps arrival order for the rendered list.
CREATE TABLE filed_issue_entries (
    issue_id    uuid NOT NULL REFERENCES filed_issues (id) ON DELETE CASCADE,
    entry_key   text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    event_key   text NOT NULL,
    source_key  text NOT NULL DEFAULT '',
    short_url   text NOT NULL DEFAULT '',
    event       jsonb NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issue_id, entry_key)
);

-- The hourly creation cap per team: issued counts the slots granted; a slot per issue makes granting idempotent.
CREATE TABLE issue_creation_counts (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    team_id       text NOT NULL,
    hour          timestamptz NOT NULL,
    issued        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, team_id, hour)
);

CREATE TABLE issue_creation_slots (
    issue_id  uuid PRIMARY KEY REFERENCES filed_issues (id) ON DELETE CASCADE,
    team_id   text NOT NULL,
    hour      timestamptz NOT NULL,
    granted   boolean NOT NULL
);
