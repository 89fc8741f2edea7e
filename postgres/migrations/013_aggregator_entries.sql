-- Entries handed to an issue aggregator wait here, keyed by the aggregator's dedup key, until its next filing takes
-- them into the issue (capability C4). The aggregator workflow only counts them, so its state, its signals and its
-- activities' inputs stay small however many links a host has. forwarded_seq marks how far a capped issue's
-- entries went on to its digest.
CREATE TABLE aggregator_entries (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    dedup_key     text NOT NULL,
    entry_key     text NOT NULL,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    event_key     text NOT NULL,
    source_key    text NOT NULL DEFAULT '',
    short_url     text NOT NULL DEFAULT '',
    event         jsonb NOT NULL,
    -- The labels and priority routing chose for the entry, merged into the issue when a filing takes it.
    labels        text[] NOT NULL DEFAULT '{}',
    priority      integer NOT NULL DEFAULT 0,
    staged_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, dedup_key, entry_key)
);

ALTER TABLE filed_issues ADD COLUMN forwarded_seq bigint NOT NULL DEFAULT 0;

-- One row per aggregator's dedup key: how many staged entries no filing has taken yet, and when its aggregator was
-- last woken. Staging and taking lock it, so an entry staged while a filing takes the others either goes with them
-- or finds the queue empty and wakes the aggregator: one signal per filing, not one per entry.
CREATE TABLE aggregator_queues (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    dedup_key     text NOT NULL,
    pending       integer NOT NULL DEFAULT 0,
    woken_at      timestamptz,
    PRIMARY KEY (workspace_id, dedup_key)
);
