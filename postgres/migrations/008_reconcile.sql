-- Reconciliation: a scheduled run per workspace lists the Linear issues changed since its watermark and applies what
-- the webhooks missed. The watermark moves only after a run applied everything it listed, so a failed run is
-- repeated from the same point by the next one.
CREATE TABLE reconcile_state (
    workspace_id      uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    watermark         timestamptz NOT NULL,
    -- interval_seconds overrides the global reconciliation interval for this workspace; NULL means the default.
    interval_seconds  integer CHECK (interval_seconds IS NULL OR interval_seconds >= 60),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per finished reconciliation run: the workspace's audit log of repaired drift. run_id is the Temporal run,
-- so a retried record counts once.
CREATE TABLE reconcile_runs (
    run_id              text PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workflow_id         text NOT NULL,
    watermark_from      timestamptz NOT NULL,
    watermark_to        timestamptz NOT NULL,
    issues_seen         integer NOT NULL DEFAULT 0,
    questions_repaired  integer NOT NULL DEFAULT 0,
    filed_repaired      integer NOT NULL DEFAULT 0,
    questions_resynced  integer NOT NULL DEFAULT 0,
    webhooks_reenabled  integer NOT NULL DEFAULT 0,
    repaired            jsonb NOT NULL DEFAULT '[]',
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconcile_runs_workspace_idx ON reconcile_runs (workspace_id, finished_at DESC);
