-- Work that failed for good (attempts exhausted or a non-retryable error). One row per workflow ID: a replay that
-- fails again updates the row, so first_failed_at and failures tell the whole story.
CREATE TABLE failed_events (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid REFERENCES workspaces (id) ON DELETE CASCADE,
    kind                text NOT NULL,
    workflow_id         text NOT NULL UNIQUE,
    run_id              text NOT NULL,
    task_queue          text NOT NULL,
    input               jsonb NOT NULL,
    error_class         text NOT NULL,
    error_message       text NOT NULL,
    attempts            integer NOT NULL,
    failures            integer NOT NULL DEFAULT 1,
    first_failed_at     timestamptz NOT NULL DEFAULT now(),
    last_failed_at      timestamptz NOT NULL DEFAULT now(),
    ui_url              text NOT NULL,
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'replayed')),
    replay_run_id       text NOT NULL DEFAULT '',
    replayed_at         timestamptz
);
CREATE INDEX failed_events_workspace_idx ON failed_events (workspace_id, last_failed_at DESC, id);
