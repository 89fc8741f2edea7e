-- A Linear credential's rate-limit state, shared by every process that calls Linear with it (capability C5): until
-- when Linear refused it, and its windows when they ran low. Written only on a refusal or a low window, and read
-- with the connection (postgres.DB.FindConnection), so a healthy budget costs no round trip.
CREATE TABLE linear_rate_limits (
    workspace_id   uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    blocked_until  timestamptz,
    windows        jsonb NOT NULL DEFAULT '[]',
    noted_at       timestamptz NOT NULL DEFAULT now()
);
