package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// RecordDeadLetter stores a failed run. A workflow ID that failed before (a replay that failed again) updates its
// row: new run, new error, one more failure, open again.
func (db *DB) RecordDeadLetter(ctx context.Context, d linsync.DeadLetter) (*linsync.DeadLetter, error) {
	var ws any
	if d.WorkspaceID != "" {
		ws = d.WorkspaceID
	}
	var id string
	err := db.pool.QueryRow(ctx, `
		INSERT INTO failed_events (id, workspace_id, kind, workflow_id, run_id, task_queue, input, error_class,
			error_message, attempts, ui_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (workflow_id) DO UPDATE SET
			run_id = EXCLUDED.run_id, error_class = EXCLUDED.error_class, error_message = EXCLUDED.error_message,
			attempts = EXCLUDED.attempts, ui_url = EXCLUDED.ui_url, last_failed_at = now(),
			failures = failed_events.failures + CASE WHEN failed_events.run_id = EXCLUDED.run_id THEN 0 ELSE 1 END,
			status = 'open'
		RETURNING id`,
		uuid.NewString(), ws, d.Kind, d.WorkflowID, d.RunID, d.TaskQueue, d.Input, d.ErrorClass, d.ErrorMessage,
		d.Attempts, d.UIURL).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("record dead letter for %s: %w", d.WorkflowID, err)
	}
	return db.FindDeadLetter(ctx, "", id)
}

const deadLetterColumns = `id, coalesce(workspace_id::text, ''), kind, workflow_id, run_id, task_queue, input, error_class,
	error_message, attempts, failures, first_failed_at, last_failed_at, ui_url, status, replay_run_id, replayed_at`

func scanDeadLetter(r pgx.CollectableRow) (linsync.DeadLetter, error) {
	var d linsync.DeadLetter
	err := r.Scan(&d.ID, &d.WorkspaceID, &d.Kind, &d.WorkflowID, &d.RunID, &d.TaskQueue, &d.Input, &d.ErrorClass,
		&d.ErrorMessage, &d.Attempts, &d.Failures, &d.FirstFailed, &d.LastFailed, &d.UIURL, &d.Status, &d.ReplayRunID,
		&d.ReplayedAt)
	return d, err
}

// FindDeadLetter returns one dead letter; with a workspace id, only that workspace's (another's is ENOTFOUND).
func (db *DB) FindDeadLetter(ctx context.Context, workspaceID, id string) (*linsync.DeadLetter, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "failed event not found")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+deadLetterColumns+` FROM failed_events
		WHERE id = $1 AND ($2 = '' OR workspace_id::text = $2)`, id, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("query failed event %s: %w", id, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDeadLetter)
	if err != nil {
		return nil, notFound(err, "failed event")
	}
	return &d, nil
}

// ListDeadLetters returns dead letters matching f, newest failure first, f.Limit at most (default 50, max 500).
func (db *DB) ListDeadLetters(ctx context.Context, f linsync.DeadLetterFilter) ([]linsync.DeadLetter, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.WorkspaceID != "" {
		add("workspace_id::text = $%d", f.WorkspaceID)
	}
	if f.Kind != "" {
		add("kind = $%d", f.Kind)
	}
	if f.ErrorClass != "" {
		add("error_class = $%d", f.ErrorClass)
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if !f.Since.IsZero() {
		add("last_failed_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("last_failed_at < $%d", f.Until)
	}
	if f.After != "" {
		if _, err := uuid.Parse(f.After); err != nil {
			return nil, &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "invalid cursor"}
		}
		args = append(args, f.After)
		n := len(args)
		where = append(where, fmt.Sprintf(`(last_failed_at, id) < (SELECT last_failed_at, id FROM failed_events WHERE id = $%d)`, n))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	q := `SELECT ` + deadLetterColumns + ` FROM failed_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY last_failed_at DESC, id DESC LIMIT %d`, limit)
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	ds, err := pgx.CollectRows(rows, scanDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("scan failed events: %w", err)
	}
	return ds, nil
}

// MarkReplayed links a dead letter to the run that replayed it.
func (db *DB) MarkReplayed(ctx context.Context, id, runID string) error {
	_, err := db.pool.Exec(ctx, `UPDATE failed_events SET status = 'replayed', replay_run_id = $2, replayed_at = now()
		WHERE id = $1`, id, runID)
	if err != nil {
		return fmt.Errorf("mark failed event %s replayed: %w", id, err)
	}
	return nil
}

// NewerDelivery returns the latest recorded delivery about the same entity with a later webhook timestamp than the
// given delivery, if any: a replay of the older one would carry stale data.
func (db *DB) NewerDelivery(ctx context.Context, workspaceID, entityID string, than linsync.Delivery) (*linsync.Delivery, error) {
	if entityID == "" || than.WebhookTimestamp == nil {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE workspace_id = $1 AND entity_id = $2 AND webhook_timestamp > $3 AND outcome = 'processed'
		ORDER BY webhook_timestamp DESC LIMIT 1`, workspaceID, entityID, *than.WebhookTimestamp)
	if err != nil {
		return nil, fmt.Errorf("look up newer deliveries of %s: %w", entityID, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan newer delivery: %w", err)
	}
	return &d, nil
}
