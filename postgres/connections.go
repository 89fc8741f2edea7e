package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

// SaveConnection stores (or replaces) a workspace's Linear connection with its secrets encrypted. Replacing bumps
// the credential version, so clients built on the old credential are dropped.
func (db *DB) SaveConnection(ctx context.Context, in linsync.ConnectionInput) (*linsync.LinearConnection, error) {
	cred, err := db.cipher.Encrypt(ctx, []byte(in.Credential))
	if err != nil {
		return nil, fmt.Errorf("encrypt linear credential: %w", err)
	}
	var refresh []byte
	if in.RefreshToken != "" {
		if refresh, err = db.cipher.Encrypt(ctx, []byte(in.RefreshToken)); err != nil {
			return nil, fmt.Errorf("encrypt refresh token: %w", err)
		}
	}
	if in.Labels == nil {
		in.Labels = []string{}
	}
	if in.OAuthScopes == nil {
		in.OAuthScopes = []string{}
	}
	_, err = db.pool.Exec(ctx, `
		INSERT INTO linear_connections (id, workspace_id, organization_id, organization_name, auth_kind,
			credential_ciphertext, credential_last4, refresh_token_ciphertext, access_token_expires_at, oauth_scopes,
			actor_user_id, actor_name, default_team_id, default_priority, default_labels)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (workspace_id) DO UPDATE SET
			organization_id = EXCLUDED.organization_id, organization_name = EXCLUDED.organization_name,
			auth_kind = EXCLUDED.auth_kind, credential_ciphertext = EXCLUDED.credential_ciphertext,
			credential_last4 = EXCLUDED.credential_last4, refresh_token_ciphertext = EXCLUDED.refresh_token_ciphertext,
			access_token_expires_at = EXCLUDED.access_token_expires_at, oauth_scopes = EXCLUDED.oauth_scopes,
			credential_version = linear_connections.credential_version + 1,
			actor_user_id = EXCLUDED.actor_user_id, actor_name = EXCLUDED.actor_name,
			default_team_id = EXCLUDED.default_team_id, default_priority = EXCLUDED.default_priority,
			default_labels = EXCLUDED.default_labels, status = 'active', status_reason = '', status_changed_at = now(),
			updated_at = now()`,
		uuid.NewString(), in.WorkspaceID, in.OrganizationID, in.OrganizationName, in.AuthKind, cred,
		envelope.Last4(in.Credential), refresh, in.ExpiresAt, in.OAuthScopes, in.ActorUserID, in.ActorName,
		in.DefaultTeam, in.Priority, in.Labels)
	if err != nil {
		return nil, fmt.Errorf("save linear connection of workspace %s: %w", in.WorkspaceID, err)
	}
	return db.FindConnection(ctx, in.WorkspaceID)
}

const connectionColumns = `id, workspace_id, organization_id, organization_name, auth_kind, credential_last4,
	access_token_expires_at, oauth_scopes, credential_version, actor_user_id, actor_name, default_team_id,
	default_priority, default_labels, status, status_reason, status_changed_at, created_at, updated_at`

func scanConnection(row interface{ Scan(...any) error }, c *linsync.LinearConnection, extra ...any) error {
	return row.Scan(append([]any{&c.ID, &c.WorkspaceID, &c.OrganizationID, &c.OrganizationName, &c.AuthKind,
		&c.CredentialLast4, &c.AccessTokenExpiresAt, &c.OAuthScopes, &c.CredentialVersion, &c.ActorUserID,
		&c.ActorName, &c.DefaultTeamID, &c.DefaultPriority, &c.DefaultLabels, &c.Status, &c.StatusReason,
		&c.StatusChangedAt, &c.CreatedAt, &c.UpdatedAt}, extra...)...)
}

// FindConnection returns a workspace's Linear connection, ENOTFOUND when it has none.
// Its RateLimit is the credential's shared rate-limit state, read in the same query.
func (db *DB) FindConnection(ctx context.Context, workspaceID string) (*linsync.LinearConnection, error) {
	var c linsync.LinearConnection
	var blocked *time.Time
	var windows []byte
	row := db.pool.QueryRow(ctx, `SELECT `+connectionColumns+`, r.blocked_until, coalesce(r.windows, '[]')
		FROM linear_connections LEFT JOIN linear_rate_limits r USING (workspace_id) WHERE workspace_id = $1`, workspaceID)
	if err := scanConnection(row, &c, &blocked, &windows); err != nil {
		return nil, notFound(err, "linear connection")
	}
	if blocked != nil {
		c.RateLimit.BlockedUntil = *blocked
	}
	if err := json.Unmarshal(windows, &c.RateLimit.Windows); err != nil {
		return nil, fmt.Errorf("decode rate-limit windows of workspace %s: %w", workspaceID, err)
	}
	return &c, nil
}

// NoteRateLimit keeps what a process learned about a workspace's Linear rate limit for every other process: the
// latest reset any of them was refused until, and the low windows last seen (kept when s has none).
func (db *DB) NoteRateLimit(ctx context.Context, workspaceID string, s linsync.SharedRateLimit) error {
	var blocked *time.Time
	if !s.BlockedUntil.IsZero() {
		blocked = &s.BlockedUntil
	}
	windows, err := json.Marshal(s.Windows)
	if err != nil || s.Windows == nil {
		windows = []byte("[]")
	}
	_, err = db.pool.Exec(ctx, `
		INSERT INTO linear_rate_limits (workspace_id, blocked_until, windows) VALUES ($1, $2, $3)
		ON CONFLICT (workspace_id) DO UPDATE SET
			blocked_until = GREATEST(linear_rate_limits.blocked_until, EXCLUDED.blocked_until),
			windows = CASE WHEN EXCLUDED.windows = '[]' THEN linear_rate_limits.windows ELSE EXCLUDED.windows END,
			noted_at = now()`, workspaceID, blocked, windows)
	if err != nil {
		return fmt.Errorf("note rate limit of workspace %s: %w", workspaceID, err)
	}
	return nil
}

// ConnectionCredentials returns a workspace's connection with its secrets decrypted.
func (db *DB) ConnectionCredentials(ctx context.Context, workspaceID string) (*linsync.LinearConnection, *linsync.LinearCredentials, error) {
	var c linsync.LinearConnection
	var cred, refresh []byte
	row := db.pool.QueryRow(ctx, `SELECT `+connectionColumns+`, credential_ciphertext, refresh_token_ciphertext
		FROM linear_connections WHERE workspace_id = $1`, workspaceID)
	if err := scanConnection(row, &c, &cred, &refresh); err != nil {
		return nil, nil, notFound(err, "linear connection")
	}
	out := &linsync.LinearCredentials{}
	plain, err := db.cipher.Decrypt(ctx, cred)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt linear credential of workspace %s: %w", workspaceID, err)
	}
	out.Credential = string(plain)
	if refresh != nil {
		if plain, err = db.cipher.Decrypt(ctx, refresh); err != nil {
			return nil, nil, fmt.Errorf("decrypt refresh token of workspace %s: %w", workspaceID, err)
		}
		out.RefreshToken = string(plain)
	}
	return &c, out, nil
}

// SetConnectionStatus marks a workspace's connection active, revoked or disconnected, with a reason.
func (db *DB) SetConnectionStatus(ctx context.Context, workspaceID, status, reason string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE linear_connections SET status = $2, status_reason = $3,
		status_changed_at = CASE WHEN status = $2 THEN status_changed_at ELSE now() END, updated_at = now()
		WHERE workspace_id = $1`, workspaceID, status, reason)
	if err != nil {
		return fmt.Errorf("set status of linear connection of workspace %s: %w", workspaceID, err)
	}
	if tag.RowsAffected() == 0 {
		return linsync.Errorf(linsync.ENOTFOUND, "linear connection not found")
	}
	return nil
}

// MarkNeedsReconnect marks a workspace's connection needs_reconnect with a reason, but only while it is active and
// still holds the credential of version (so a refusal of the old key, arriving after an admin connected a new one,
// changes nothing). It reports whether the connection changed.
func (db *DB) MarkNeedsReconnect(ctx context.Context, workspaceID string, version int, reason string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE linear_connections
		SET status = 'needs_reconnect', status_reason = $3, status_changed_at = now(), updated_at = now()
		WHERE workspace_id = $1 AND credential_version = $2 AND status = 'active'`, workspaceID, version, reason)
	if err != nil {
		return false, fmt.Errorf("mark linear connection of workspace %s needs_reconnect: %w", workspaceID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecordPausedWork registers a workflow as waiting for its workspace's reconnect (again: the latest run and reason
// win).
func (db *DB) RecordPausedWork(ctx context.Context, workspaceID string, w linsync.PausedWork) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO linear_paused_work (workspace_id, workflow_id, run_id, reason)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace_id, workflow_id) DO UPDATE SET run_id = EXCLUDED.run_id, reason = EXCLUDED.reason`,
		workspaceID, w.WorkflowID, w.RunID, w.Reason)
	if err != nil {
		return fmt.Errorf("record paused workflow %s: %w", w.WorkflowID, err)
	}
	return nil
}

// ClearPausedWork forgets a workflow that no longer waits.
func (db *DB) ClearPausedWork(ctx context.Context, workspaceID, workflowID string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM linear_paused_work WHERE workspace_id = $1 AND workflow_id = $2`,
		workspaceID, workflowID); err != nil {
		return fmt.Errorf("clear paused workflow %s: %w", workflowID, err)
	}
	return nil
}

// ListPausedWork returns the workflows waiting for the workspace's reconnect, oldest first.
func (db *DB) ListPausedWork(ctx context.Context, workspaceID string) ([]linsync.PausedWork, error) {
	rows, err := db.pool.Query(ctx, `SELECT workflow_id, run_id, reason, since FROM linear_paused_work
		WHERE workspace_id = $1 ORDER BY since, workflow_id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list paused work of workspace %s: %w", workspaceID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.PausedWork, error) {
		var w linsync.PausedWork
		err := r.Scan(&w.WorkflowID, &w.RunID, &w.Reason, &w.Since)
		return w, err
	})
}

// OrganizationConnectedElsewhere reports whether a Linear organization has a live connection (active, or waiting
// for a reconnect) in a workspace other than workspaceID.
func (db *DB) OrganizationConnectedElsewhere(ctx context.Context, organizationID, workspaceID string) (bool, error) {
	var found bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM linear_connections WHERE organization_id = $1
		AND workspace_id::text <> $2 AND status NOT IN ('disconnected', 'revoked'))`, organizationID, workspaceID).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("look up connections of organization %s: %w", organizationID, err)
	}
	return found, nil
}
