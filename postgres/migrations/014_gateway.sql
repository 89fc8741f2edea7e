-- Agent gateway (issue 17): agents call Linear through linsync with agent keys, classified, governed by policy,
-- with human approval and a hash-chained audit trail.

-- Agent keys: shown once, kept as a SHA-256 digest, scoped to one workspace, each with its policy.
CREATE TABLE agent_keys (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> ''),
    key_hash     bytea NOT NULL UNIQUE,
    key_last4    text NOT NULL,
    policy       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX agent_keys_workspace_idx ON agent_keys (workspace_id, created_at DESC);

-- A workspace's rules for held requests; a workspace without a row has the defaults.
CREATE TABLE gateway_settings (
    workspace_id             uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    high_risk_approvers      int NOT NULL CHECK (high_risk_approvers BETWEEN 1 AND 2),
    approval_timeout_seconds int NOT NULL CHECK (approval_timeout_seconds > 0),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- Requests held for approval. The request (document, variables, operation name) and Linear's answer are kept only
-- encrypted with the envelope keeper; the workflow that holds the request knows only its id.
CREATE TABLE gateway_approvals (
    id                 uuid PRIMARY KEY,
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    agent_key_id       uuid NOT NULL REFERENCES agent_keys (id) ON DELETE CASCADE,
    agent_id           text NOT NULL,
    operation_name     text NOT NULL DEFAULT '',
    operation_type     text NOT NULL,
    name_mismatch      text NOT NULL DEFAULT '',
    actions            jsonb NOT NULL,
    risk               text NOT NULL,
    complexity         int NOT NULL,
    variable_names     text[] NOT NULL DEFAULT '{}',
    request_hash       text NOT NULL,
    request_sealed     bytea NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'forwarding',
                                                       'forwarded', 'failed', 'outcome_unknown')),
    required_approvals int NOT NULL CHECK (required_approvals BETWEEN 1 AND 2),
    approvers          jsonb NOT NULL DEFAULT '[]',
    denied_by          jsonb,
    reason             text NOT NULL DEFAULT '',
    workflow_id        text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    decided_at         timestamptz,
    forward_started_at timestamptz,
    forwarded_at       timestamptz,
    linear_status      int,
    latency_ms         bigint NOT NULL DEFAULT 0,
    response_sealed    bytea,
    response_fetched_at timestamptz
);
CREATE INDEX gateway_approvals_workspace_idx ON gateway_approvals (workspace_id, status, created_at DESC);

-- The audit trail: one row per decision on an agent's call, chained per workspace (each row's hash covers the
-- previous row's), with the chain's head kept apart so appends serialise on it and a truncated tail is noticed.
CREATE TABLE gateway_audit (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    seq            bigint NOT NULL,
    at             timestamptz NOT NULL,
    entry          jsonb NOT NULL,
    agent_key_id   text NOT NULL DEFAULT '',
    agent_id       text NOT NULL DEFAULT '',
    decision       text NOT NULL,
    risk           text NOT NULL DEFAULT '',
    actions        text[] NOT NULL DEFAULT '{}',
    prev_hash      text NOT NULL,
    hash           text NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX gateway_audit_agent_idx ON gateway_audit (workspace_id, agent_id, seq DESC);

CREATE TABLE gateway_audit_heads (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    hash         text NOT NULL
);
