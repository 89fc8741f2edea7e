-- Security hardening (issue 15).

-- An OAuth authorization is bound to the browser (or client) that started it: the hash of a nonce sent to it in an
-- HttpOnly cookie. The callback completes only where that cookie comes back.
ALTER TABLE oauth_states ADD COLUMN browser_hash bytea;

-- Workspaces are found by slug or by id; a slug shaped like a UUID would make that ambiguous. Existing rows are not
-- re-checked (NOT VALID); the application refuses such slugs as well.
ALTER TABLE workspaces ADD CONSTRAINT workspaces_slug_not_uuid
    CHECK (slug !~ '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$') NOT VALID;
