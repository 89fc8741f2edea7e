package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

const webhookRecordColumns = `id, workspace_id, coalesce(connection_id::text, ''), organization_id, coalesce(team_id, ''),
	coalesce(linear_webhook_id, ''), managed, url, resource_types, secret_last4,
	CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END, created_at, updated_at`

func scanWebhookRecord(row interface{ Scan(...any) error }) (*linsync.WebhookRecord, error) {
	var w linsync.WebhookRecord
	err := row.Scan(&w.ID, &w.WorkspaceID, &w.ConnectionID, &w.OrganizationID, &w.TeamID, &w.LinearWebhookID,
		&w.Managed, &w.URL, &w.ResourceTypes, &w.SecretLast4, &w.PreviousSecretExpiresAt, &w.CreatedAt, &w.UpdatedAt)
	return &w, err
}

// RegisterLinearWebhook stores a Linear webhook with its signing secret encrypted. Deliveries signed with the
// secret verify from the moment this returns.
func (db *DB) RegisterLinearWebhook(ctx context.Context, in linsync.WebhookRegistration) (*linsync.WebhookRecord, error) {
	switch {
	case in.Secret == "":
		return nil, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "secret", Message: "webhook secret is required"}
	case in.OrganizationID == "":
		return nil, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "organization_id", Message: "Linear organization id is required"}
	}
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	if in.ResourceTypes == nil {
		in.ResourceTypes = []string{}
	}
	ct, err := db.cipher.Encrypt(ctx, []byte(in.Secret))
	if err != nil {
		return nil, fmt.Errorf("encrypt webhook secret: %w", err)
	}
	row := db.pool.QueryRow(ctx, `
		INSERT INTO linear_webhooks (id, workspace_id, connection_id, organization_id, team_id, linear_webhook_id,
			managed, url, resource_types, secret_ciphertext, secret_last4)
		VALUES ($1, $2, NULLIF($3, '')::uuid, $4, NULLIF($5, ''), NULLIF($6, ''), $7, $8, $9, $10, $11)
		RETURNING `+webhookRecordColumns,
		in.ID, in.WorkspaceID, in.ConnectionID, in.OrganizationID, in.TeamID, in.LinearWebhookID, in.Managed, in.URL,
		in.ResourceTypes, ct, envelope.Last4(in.Secret))
	w, err := scanWebhookRecord(row)
	if err != nil {
		return nil, fmt.Errorf("insert linear webhook for workspace %s: %w", in.WorkspaceID, err)
	}
	return w, nil
}

// ListLinearWebhooks returns a workspace's registered Linear webhooks, oldest first.
func (db *DB) ListLinearWebhooks(ctx context.Context, workspaceID string) ([]*linsync.WebhookRecord, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+webhookRecordColumns+` FROM linear_webhooks
		WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list linear webhooks of workspace %s: %w", workspaceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*linsync.WebhookRecord, error) { return scanWebhookRecord(r) })
	if err != nil {
		return nil, fmt.Errorf("scan linear webhooks of workspace %s: %w", workspaceID, err)
	}
	return out, nil
}

// FindLinearWebhook returns one of a workspace's webhooks; another workspace's id is ENOTFOUND.
func (db *DB) FindLinearWebhook(ctx context.Context, workspaceID, id string) (*linsync.WebhookRecord, error) {
	if uuid.Validate(id) != nil {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "linear webhook not found")
	}
	w, err := scanWebhookRecord(db.pool.QueryRow(ctx, `SELECT `+webhookRecordColumns+` FROM linear_webhooks
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	if err != nil {
		return nil, notFound(err, "linear webhook")
	}
	return w, nil
}

// DeleteLinearWebhook forgets one of a workspace's webhooks: its deliveries no longer verify.
func (db *DB) DeleteLinearWebhook(ctx context.Context, workspaceID, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM linear_webhooks WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return fmt.Errorf("delete linear webhook %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return linsync.Errorf(linsync.ENOTFOUND, "linear webhook not found")
	}
	return nil
}

// RotateLinearWebhookSecretWith makes secret current and keeps the previous one valid for grace, but only if apply
// (which tells Linear) succeeds: the change is committed after apply returns nil and rolled back otherwise, so
// linsync never accepts a secret Linear does not sign with, nor drops the one it still signs with.
func (db *DB) RotateLinearWebhookSecretWith(ctx context.Context, workspaceID, id, secret string, grace time.Duration,
	apply func(ctx context.Context) error) (*linsync.WebhookRecord, error) {
	if secret == "" {
		return nil, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "secret", Message: "webhook secret is required"}
	}
	ct, err := db.cipher.Encrypt(ctx, []byte(secret))
	if err != nil {
		return nil, fmt.Errorf("encrypt webhook secret: %w", err)
	}
	var out *linsync.WebhookRecord
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		w, err := scanWebhookRecord(tx.QueryRow(ctx, `
			UPDATE linear_webhooks
			SET previous_secret_ciphertext = secret_ciphertext,
			    previous_secret_expires_at = now() + $4 * interval '1 millisecond',
			    secret_ciphertext = $3, secret_last4 = $5, updated_at = now()
			WHERE workspace_id = $1 AND id = $2
			RETURNING `+webhookRecordColumns, workspaceID, id, ct, grace.Milliseconds(), envelope.Last4(secret)))
		if err != nil {
			return notFound(err, "linear webhook")
		}
		if apply != nil {
			if err := apply(ctx); err != nil {
				return err
			}
		}
		out = w
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const (
	maxAccessEventDetail   = 1000
	accessEventListDefault = 100
)

// RecordAccessEvent appends to a workspace's access history. Detail must not carry a secret.
func (db *DB) RecordAccessEvent(ctx context.Context, e linsync.AccessEvent) error {
	if len(e.Detail) > maxAccessEventDetail {
		e.Detail = e.Detail[:maxAccessEventDetail]
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO access_events (workspace_id, connection_id, kind, outcome, detail)
		VALUES ($1, NULLIF($2, '')::uuid, $3, $4, $5)`, e.WorkspaceID, e.ConnectionID, e.Kind, e.Outcome, e.Detail)
	if err != nil {
		return fmt.Errorf("record access event %s for workspace %s: %w", e.Kind, e.WorkspaceID, err)
	}
	return nil
}

// ListAccessEvents returns a workspace's most recent access history, newest first.
func (db *DB) ListAccessEvents(ctx context.Context, workspaceID string, limit int) ([]linsync.AccessEvent, error) {
	if limit <= 0 {
		limit = accessEventListDefault
	}
	rows, err := db.pool.Query(ctx, `SELECT id, workspace_id, coalesce(connection_id::text, ''), kind, outcome, detail,
		created_at FROM access_events WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, fmt.Errorf("list access events of workspace %s: %w", workspaceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.AccessEvent, error) {
		var e linsync.AccessEvent
		err := r.Scan(&e.ID, &e.WorkspaceID, &e.ConnectionID, &e.Kind, &e.Outcome, &e.Detail, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan access events of workspace %s: %w", workspaceID, err)
	}
	return out, nil
}

// LastDeliveries returns, per Linear webhook id, when the workspace last recorded a delivery it sent.
func (db *DB) LastDeliveries(ctx context.Context, workspaceID string) (map[string]time.Time, error) {
	rows, err := db.pool.Query(ctx, `SELECT webhook_id, max(received_at) FROM webhook_deliveries
		WHERE workspace_id = $1 AND webhook_id <> '' GROUP BY webhook_id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("last deliveries of workspace %s: %w", workspaceID, err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("scan last delivery: %w", err)
		}
		out[id] = at
	}
	return out, rows.Err()
}

// UpdateConnectionDefaults changes a connection's default team, priority and labels (nil leaves one as it is).
func (db *DB) UpdateConnectionDefaults(ctx context.Context, workspaceID string, team *string, priority *int, labels []string) (*linsync.LinearConnection, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE linear_connections SET default_team_id = coalesce($2, default_team_id),
		default_priority = coalesce($3, default_priority), default_labels = coalesce($4, default_labels), updated_at = now()
		WHERE workspace_id = $1`, workspaceID, team, priority, labels)
	if err != nil {
		return nil, fmt.Errorf("update defaults of linear connection of workspace %s: %w", workspaceID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "linear connection not found")
	}
	return db.FindConnection(ctx, workspaceID)
}
