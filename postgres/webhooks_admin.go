package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

const webhookRecordColumns = `id, workspace_id, coalesce(connection_id::text, ''), organization_id, coalesce(team_id, ''),
	coalesce(linear_webhook_id, ''), managed, url, resource_types, secret_last4,
	CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END,
	pending_secret_ciphertext IS NOT NULL, created_at, updated_at`

func scanWebhookRecord(row interface{ Scan(...any) error }) (*linsync.WebhookRecord, error) {
	var w linsync.WebhookRecord
	err := row.Scan(&w.ID, &w.WorkspaceID, &w.ConnectionID, &w.OrganizationID, &w.TeamID, &w.LinearWebhookID,
		&w.Managed, &w.URL, &w.ResourceTypes, &w.SecretLast4, &w.PreviousSecretExpiresAt, &w.RotationPending,
		&w.CreatedAt, &w.UpdatedAt)
	return &w, err
}

// RegisterLinearWebhook stores a Linear webhook with its signing secret encrypted. Deliveries signed with the
// secret verify from the moment this returns. A workspace holds at most linsync.MaxWebhooksPerWorkspace webhooks
// (EUNPROCESSABLE beyond), registers a Linear webhook id once, and has one managed webhook per organization and team
// scope: a second is ECONFLICT, and FindManagedWebhook returns the one that exists.
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
	var w *linsync.WebhookRecord
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// The workspace's row lock serialises registrations, so the count cannot be raced past the cap. The count is a
		// statement of its own: its snapshot is taken once the lock is held.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE`, in.WorkspaceID); err != nil {
			return fmt.Errorf("lock workspace %s: %w", in.WorkspaceID, err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM linear_webhooks WHERE workspace_id = $1`, in.WorkspaceID).Scan(&n); err != nil {
			return fmt.Errorf("count webhooks of workspace %s: %w", in.WorkspaceID, err)
		}
		if n >= linsync.MaxWebhooksPerWorkspace {
			return linsync.Errorf(linsync.EUNPROCESSABLE, "a workspace may register at most %d Linear webhooks; delete one first",
				linsync.MaxWebhooksPerWorkspace)
		}
		row := tx.QueryRow(ctx, `
			INSERT INTO linear_webhooks (id, workspace_id, connection_id, organization_id, team_id, linear_webhook_id,
				managed, url, resource_types, secret_ciphertext, secret_last4)
			VALUES ($1, $2, NULLIF($3, '')::uuid, $4, NULLIF($5, ''), NULLIF($6, ''), $7, $8, $9, $10, $11)
			RETURNING `+webhookRecordColumns,
			in.ID, in.WorkspaceID, in.ConnectionID, in.OrganizationID, in.TeamID, in.LinearWebhookID, in.Managed, in.URL,
			in.ResourceTypes, ct, envelope.Last4(in.Secret))
		w, err = scanWebhookRecord(row)
		return err
	})
	switch {
	case isUniqueViolation(err, "linear_webhooks_managed_scope_idx"):
		return nil, linsync.Errorf(linsync.ECONFLICT, "the workspace already has a managed webhook for this team scope")
	case isUniqueViolation(err, "linear_webhooks_linear_id_idx"):
		return nil, &linsync.Error{Code: linsync.ECONFLICT, Field: "linear_webhook_id",
			Message: "the workspace already registered Linear webhook " + in.LinearWebhookID}
	case err != nil && linsync.ErrorCode(err) != linsync.EINTERNAL:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("insert linear webhook for workspace %s: %w", in.WorkspaceID, err)
	}
	return w, nil
}

// FindManagedWebhook returns the workspace's managed webhook for an organization and team scope ("" is all public
// teams); ENOTFOUND when there is none.
func (db *DB) FindManagedWebhook(ctx context.Context, workspaceID, organizationID, teamID string) (*linsync.WebhookRecord, error) {
	w, err := scanWebhookRecord(db.pool.QueryRow(ctx, `SELECT `+webhookRecordColumns+` FROM linear_webhooks
		WHERE managed AND workspace_id = $1 AND organization_id = $2 AND coalesce(team_id, '') = $3`,
		workspaceID, organizationID, teamID))
	if err != nil {
		return nil, notFound(err, "managed webhook")
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

// StageWebhookSecret is a managed rotation's first phase: secret is stored (committed) as the webhook's pending
// secret, accepted beside the current one, before Linear is asked to sign with it. When a pending secret is already
// there (a rotation whose answer from Linear was lost), that one is kept and returned instead, so a retried rotation
// sends Linear the secret it may already sign with rather than minting another.
func (db *DB) StageWebhookSecret(ctx context.Context, workspaceID, id, secret string) (string, error) {
	if secret == "" {
		return "", &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "secret", Message: "webhook secret is required"}
	}
	ct, err := db.cipher.Encrypt(ctx, []byte(secret))
	if err != nil {
		return "", fmt.Errorf("encrypt webhook secret: %w", err)
	}
	var pending []byte
	err = db.pool.QueryRow(ctx, `
		UPDATE linear_webhooks
		SET pending_secret_ciphertext = coalesce(pending_secret_ciphertext, $3),
		    pending_secret_last4 = coalesce(pending_secret_last4, $4), updated_at = now()
		WHERE workspace_id = $1 AND id = $2
		RETURNING pending_secret_ciphertext`, workspaceID, id, ct, envelope.Last4(secret)).Scan(&pending)
	if err != nil {
		return "", notFound(err, "linear webhook")
	}
	plain, err := db.cipher.Decrypt(ctx, pending)
	if err != nil {
		return "", fmt.Errorf("decrypt pending webhook secret: %w", err)
	}
	return string(plain), nil
}

// PromoteWebhookSecret is a managed rotation's last phase, once Linear signs with the pending secret: it becomes the
// current one and the current one the previous, accepted for grace. ECONFLICT when nothing is pending (another
// request promoted it).
func (db *DB) PromoteWebhookSecret(ctx context.Context, workspaceID, id string, grace time.Duration) (*linsync.WebhookRecord, error) {
	w, err := scanWebhookRecord(db.pool.QueryRow(ctx, `
		UPDATE linear_webhooks
		SET previous_secret_ciphertext = secret_ciphertext,
		    previous_secret_expires_at = now() + $3 * interval '1 millisecond',
		    secret_ciphertext = pending_secret_ciphertext, secret_last4 = pending_secret_last4,
		    pending_secret_ciphertext = NULL, pending_secret_last4 = NULL, updated_at = now()
		WHERE workspace_id = $1 AND id = $2 AND pending_secret_ciphertext IS NOT NULL
		RETURNING `+webhookRecordColumns, workspaceID, id, grace.Milliseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, linsync.Errorf(linsync.ECONFLICT, "no rotation of webhook %s is pending", id)
	}
	if err != nil {
		return nil, fmt.Errorf("promote pending secret of webhook %s: %w", id, err)
	}
	return w, nil
}

// RotateLinearWebhookSecret makes secret current at once and keeps the previous one valid for grace: the rotation of
// a manual webhook, whose new secret Linear already signs with. A managed webhook rotates in two phases
// (StageWebhookSecret, then PromoteWebhookSecret once Linear answered).
func (db *DB) RotateLinearWebhookSecret(ctx context.Context, workspaceID, id, secret string, grace time.Duration) (*linsync.WebhookRecord, error) {
	if secret == "" {
		return nil, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "secret", Message: "webhook secret is required"}
	}
	ct, err := db.cipher.Encrypt(ctx, []byte(secret))
	if err != nil {
		return nil, fmt.Errorf("encrypt webhook secret: %w", err)
	}
	w, err := scanWebhookRecord(db.pool.QueryRow(ctx, `
		UPDATE linear_webhooks
		SET previous_secret_ciphertext = secret_ciphertext,
		    previous_secret_expires_at = now() + $4 * interval '1 millisecond',
		    secret_ciphertext = $3, secret_last4 = $5, updated_at = now()
		WHERE workspace_id = $1 AND id = $2
		RETURNING `+webhookRecordColumns, workspaceID, id, ct, grace.Milliseconds(), envelope.Last4(secret)))
	if err != nil {
		return nil, notFound(err, "linear webhook")
	}
	return w, nil
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
