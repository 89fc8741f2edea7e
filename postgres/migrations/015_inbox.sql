-- The durable inbox (capability C1): every verified webhook delivery, accepted event and question change handed to
-- its workflow is written here, in one statement, before linsync answers 200. The API's dispatcher starts the
-- workflow at once and marks the row started; a drainer in the worker starts, oldest first, whatever the
-- dispatcher did not (Temporal slow or down, the API killed). Several drainers share the table with
-- FOR UPDATE SKIP LOCKED.
--
-- It is also the replay protection by content: a delivery is unique per workspace by the SHA-256 of its signed
-- body, whatever its Linear-Delivery header says, and by its delivery id; an event by its idempotency key. A row's
-- input is dropped once its workflow started, the row itself is kept until keep_until (Linear's retry horizon
-- after the body's timestamp), so a re-posted body stays a duplicate as long as its signature could be accepted.
CREATE TABLE inbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('delivery', 'event', 'question')),
    source_key       text NOT NULL,
    content_hash     bytea CHECK (content_hash IS NULL OR length(content_hash) = 32),
    workflow_id      text NOT NULL,
    input            bytea,
    trace_context    text NOT NULL DEFAULT '',
    received_at      timestamptz NOT NULL DEFAULT now(),
    drain_after      timestamptz NOT NULL DEFAULT now(),
    keep_until       timestamptz NOT NULL,
    started_at       timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX inbox_content_idx ON inbox (workspace_id, content_hash) WHERE content_hash IS NOT NULL;
-- Question changes coalesce in their workflow (it reads the work from Postgres), so each hand-off is a row of its own.
CREATE UNIQUE INDEX inbox_source_idx ON inbox (workspace_id, kind, source_key) WHERE kind <> 'question';
-- The drainer's queue: items not started, oldest (lowest id) first.
CREATE INDEX inbox_pending_idx ON inbox (id) WHERE started_at IS NULL;
CREATE INDEX inbox_workspace_pending_idx ON inbox (workspace_id, received_at) WHERE started_at IS NULL;
CREATE INDEX inbox_prune_idx ON inbox (keep_until) WHERE started_at IS NOT NULL;

-- Delivery ids are scoped to their workspace, as the workflow IDs are: one tenant cannot claim another's delivery.
-- A delivery started directly while the inbox was unreachable, whose body another delivery had brought, is
-- recorded as a duplicate.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_pkey;
ALTER TABLE webhook_deliveries ADD PRIMARY KEY (workspace_id, delivery_id);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_outcome_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_outcome_check
    CHECK (outcome IN ('processed', 'ignored', 'unknown_type', 'failed', 'unclaimed', 'duplicate'));
