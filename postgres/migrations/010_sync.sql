-- Sync that never goes quiet (issue 14).
-- needs_reconnect: Linear refused the stored credential; work waits for an admin to connect again.
ALTER TABLE linear_connections DROP CONSTRAINT linear_connections_status_check;
ALTER TABLE linear_connections
    ADD CONSTRAINT linear_connections_status_check
        CHECK (status IN ('active', 'revoked', 'disconnected', 'needs_reconnect')),
    ADD COLUMN status_changed_at timestamptz;

-- Work waiting for a workspace's reconnect: each workflow that found Linear refusing the credential registers here
-- before it waits, so a reconnect can signal every one of them at once.
CREATE TABLE linear_paused_work (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workflow_id  text NOT NULL,
    run_id       text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    since        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, workflow_id)
);

-- Workspace matching by team: a workspace may claim Linear teams of its organization; a delivery about a claimed
-- team goes to the claiming workspace, one about a team nobody claims is recorded as unclaimed.
CREATE TABLE linear_team_claims (
    organization_id text NOT NULL,
    team_id         text NOT NULL,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, team_id)
);
CREATE INDEX linear_team_claims_workspace_idx ON linear_team_claims (workspace_id);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_outcome_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_outcome_check
    CHECK (outcome IN ('processed', 'ignored', 'unknown_type', 'failed', 'unclaimed'));
