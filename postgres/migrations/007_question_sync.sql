-- Question sync bookkeeping for reconciliation and echo guards.

-- sync_attempts counts the sync passes that failed since the question was last synced; sync_attempted_at is when
-- the last pass ended (synced, pending or failed). Reconciliation lists questions left pending or failed with them.
ALTER TABLE questions
    ADD COLUMN sync_attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN sync_attempted_at timestamptz;
CREATE INDEX questions_unsynced_idx ON questions (workspace_id, sync_attempted_at)
    WHERE linked AND sync_state IN ('pending', 'failed');

-- pushing_value is the value of a field being written to Linear and pushing_linear what Linear will hold, stored
-- before the call (like the pre-chosen issue and comment ids) and cleared when the write is recorded: a webhook of
-- our own write that overtakes the record is then known as an echo by its value even when its actor cannot tell.
-- pushing_at is when the write started. written_at holds Linear's updatedAt of linsync's last recorded writes of
-- the field, so a late webhook of an older write is known too.
ALTER TABLE question_fields
    ADD COLUMN pushing_value  text,
    ADD COLUMN pushing_linear text,
    ADD COLUMN pushing_at     timestamptz,
    ADD COLUMN written_at     timestamptz[] NOT NULL DEFAULT '{}';
