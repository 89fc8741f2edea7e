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
    staged_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, dedup_key, entry_key)
);

ALTER TABLE filed_issues ADD COLUMN forwarded_seq bigint NOT NULL DEFAULT 0;
