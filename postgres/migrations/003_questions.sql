-- Questions and replies from a Q&A application, each kept in step with a Linear issue and its comments.

-- Per-workspace settings of question sync. status_map maps Linear state types to question statuses and
-- state_for_status the other way; NULL means the documented defaults (see postgres.DefaultStatusMap).
CREATE TABLE question_settings (
    workspace_id                uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    status_map                  jsonb,
    state_for_status            jsonb,
    delete_policy               text NOT NULL DEFAULT 'comment' CHECK (delete_policy IN ('comment', 'cancel')),
    callback_url                text NOT NULL DEFAULT '',
    -- question_url_template links an issue back to the app: {external_id} and {id} are replaced.
    question_url_template       text NOT NULL DEFAULT '',
    callback_secret_ciphertext  bytea,
    callback_secret_last4       text NOT NULL DEFAULT '',
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- A question. linear_issue_id is chosen by linsync when the question is created, before any call to Linear, so a
-- retried issueCreate reuses it and Linear answers "conflict" instead of filing a second issue. issue_created says
-- whether Linear has confirmed the issue. sync_state is what the API shows: pending, synced, failed or unlinked.
CREATE TABLE questions (
    id                uuid PRIMARY KEY,
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    external_id       text,
    title             text NOT NULL,
    body              text NOT NULL DEFAULT '',
    asker_email       text NOT NULL,
    team_id           text NOT NULL,
    linear_issue_id   text NOT NULL,
    issue_created     boolean NOT NULL DEFAULT false,
    linear_identifier text NOT NULL DEFAULT '',
    linear_url        text NOT NULL DEFAULT '',
    linked            boolean NOT NULL DEFAULT true,
    sync_state        text NOT NULL DEFAULT 'pending' CHECK (sync_state IN ('pending', 'synced', 'failed', 'unlinked')),
    sync_reason       text NOT NULL DEFAULT '',
    sync_warning      text NOT NULL DEFAULT '',
    archived_at       timestamptz,
    archive_synced    boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT questions_external_id_key UNIQUE (workspace_id, external_id)
);
CREATE UNIQUE INDEX questions_issue_idx ON questions (workspace_id, linear_issue_id);
CREATE INDEX questions_list_idx ON questions (workspace_id, updated_at, id);

-- The synced fields of a question (status, assignee_email, priority, title, body), versioned per field:
-- value is the question's value, set by the edit of source at source_at (the app's request time or Linear's
-- updatedAt); linear_value is what Linear is known to hold, as of linear_at (Linear's clock); synced_value is the
-- value linear_value stands for. A field needs a write to Linear exactly when value <> synced_value.
CREATE TABLE question_fields (
    question_id   uuid NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    field         text NOT NULL,
    value         text NOT NULL,
    source        text NOT NULL CHECK (source IN ('app', 'linear')),
    source_at     timestamptz NOT NULL,
    linear_value  text,
    synced_value  text,
    linear_at     timestamptz,
    PRIMARY KEY (question_id, field)
);

-- Replies: from the app (a Linear comment is created with the pre-chosen linear_comment_id) or from Linear
-- (a comment written there).
CREATE TABLE question_replies (
    id                 uuid PRIMARY KEY,
    question_id        uuid NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    external_id        text,
    body               text NOT NULL,
    author_email       text NOT NULL DEFAULT '',
    author_name        text NOT NULL DEFAULT '',
    source             text NOT NULL CHECK (source IN ('app', 'linear')),
    linear_comment_id  text NOT NULL,
    synced             boolean NOT NULL DEFAULT false,
    deleted_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT question_replies_external_id_key UNIQUE (question_id, external_id),
    CONSTRAINT question_replies_comment_key UNIQUE (workspace_id, linear_comment_id)
);
CREATE INDEX question_replies_question_idx ON question_replies (question_id, created_at, id);

-- Every conflict, stale change, unlink and unmatched email, per question, for the audit endpoint.
CREATE TABLE question_audit (
    id           bigserial PRIMARY KEY,
    question_id  uuid NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    field        text NOT NULL DEFAULT '',
    detail       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX question_audit_question_idx ON question_audit (question_id, id);

-- Linear users seen in webhooks or look-ups, so a payload that lacks an email is resolved without calling Linear.
CREATE TABLE linear_users (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id       text NOT NULL,
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
