package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

const (
	maxRoutingRules      = 200
	defaultFiledPageSize = 20
)

// EventSettings returns a workspace's event settings, the defaults when it saved none.
func (db *DB) EventSettings(ctx context.Context, workspaceID string) (linsync.EventSettings, error) {
	s := linsync.DefaultEventSettings()
	var window, debounce int64
	var updated time.Time
	err := db.pool.QueryRow(ctx, `SELECT title_prefix, broken_link_window_seconds, creation_cap_per_hour, tag_labels,
		debounce_ms, updated_at FROM event_settings WHERE workspace_id = $1`, workspaceID).
		Scan(&s.TitlePrefix, &window, &s.CreationCapPerHour, &s.TagLabels, &debounce, &updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s, nil
	case err != nil:
		return s, fmt.Errorf("query event settings of workspace %s: %w", workspaceID, err)
	}
	s.BrokenLinkWindow = time.Duration(window) * time.Second
	s.Debounce = time.Duration(debounce) * time.Millisecond
	s.UpdatedAt = &updated
	return s, nil
}

// SaveEventSettings stores a workspace's event settings (validated by the caller; the table re-checks bounds).
func (db *DB) SaveEventSettings(ctx context.Context, workspaceID string, s linsync.EventSettings) (linsync.EventSettings, error) {
	if s.TagLabels == nil {
		s.TagLabels = []string{}
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO event_settings (workspace_id, title_prefix, broken_link_window_seconds, creation_cap_per_hour,
			tag_labels, debounce_ms)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (workspace_id) DO UPDATE SET title_prefix = EXCLUDED.title_prefix,
			broken_link_window_seconds = EXCLUDED.broken_link_window_seconds,
			creation_cap_per_hour = EXCLUDED.creation_cap_per_hour, tag_labels = EXCLUDED.tag_labels,
			debounce_ms = EXCLUDED.debounce_ms, updated_at = now()`,
		workspaceID, s.TitlePrefix, int64(s.BrokenLinkWindow/time.Second), s.CreationCapPerHour, s.TagLabels,
		s.Debounce.Milliseconds())
	switch {
	case isCheckViolation(err):
		return s, linsync.Errorf(linsync.EUNPROCESSABLE, "event settings out of bounds")
	case err != nil:
		return s, fmt.Errorf("save event settings of workspace %s: %w", workspaceID, err)
	}
	return db.EventSettings(ctx, workspaceID)
}

// RoutingRules returns a workspace's ordered routing rules and their version (0 when none were saved).
func (db *DB) RoutingRules(ctx context.Context, workspaceID string) ([]linsync.RoutingRule, int, error) {
	var raw []byte
	var version int
	err := db.pool.QueryRow(ctx, `SELECT rules, version FROM routing_rules WHERE workspace_id = $1`, workspaceID).
		Scan(&raw, &version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return []linsync.RoutingRule{}, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("query routing rules of workspace %s: %w", workspaceID, err)
	}
	rules := []linsync.RoutingRule{}
	if err := json.Unmarshal(raw, &rules); err != nil {
		return nil, 0, fmt.Errorf("decode routing rules of workspace %s: %w", workspaceID, err)
	}
	return rules, version, nil
}

// SaveRoutingRules replaces a workspace's routing rules (validated by the caller) and returns the new version.
func (db *DB) SaveRoutingRules(ctx context.Context, workspaceID string, rules []linsync.RoutingRule) (int, error) {
	if len(rules) > maxRoutingRules {
		return 0, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "rules",
			Message: fmt.Sprintf("at most %d routing rules", maxRoutingRules)}
	}
	if rules == nil {
		rules = []linsync.RoutingRule{}
	}
	raw, err := json.Marshal(rules)
	if err != nil {
		return 0, fmt.Errorf("encode routing rules: %w", err)
	}
	var version int
	err = db.pool.QueryRow(ctx, `
		INSERT INTO routing_rules (workspace_id, rules) VALUES ($1, $2)
		ON CONFLICT (workspace_id) DO UPDATE SET rules = EXCLUDED.rules, version = routing_rules.version + 1,
			updated_at = now()
		RETURNING version`, workspaceID, raw).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("save routing rules of workspace %s: %w", workspaceID, err)
	}
	return version, nil
}

// EventRouting loads what routing an event needs: rules, settings and the Linear connection's defaults. A
// workspace without a Linear connection gets ENOTFOUND.
func (db *DB) EventRouting(ctx context.Context, workspaceID string) (*linsync.RoutingContext, error) {
	conn, err := db.FindConnection(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	rules, _, err := db.RoutingRules(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	s, err := db.EventSettings(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	labels := conn.DefaultLabels
	if labels == nil {
		labels = []string{}
	}
	return &linsync.RoutingContext{WorkspaceID: workspaceID, Rules: rules, Settings: s, DefaultTeamID: conn.DefaultTeamID,
		DefaultLabels: labels, DefaultPriority: conn.DefaultPriority}, nil
}

// CompletedEventKeys returns which of keys belong to events of the workspace that were handled completely.
func (db *DB) CompletedEventKeys(ctx context.Context, workspaceID string, keys []string) (map[string]bool, error) {
	rows, err := db.pool.Query(ctx, `SELECT idempotency_key FROM event_receipts
		WHERE workspace_id = $1 AND idempotency_key = ANY($2) AND completed_at IS NOT NULL`, workspaceID, keys)
	if err != nil {
		return nil, fmt.Errorf("query event receipts of workspace %s: %w", workspaceID, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan event receipts: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}

// ClaimEventReceipt records that the workflow run runID handles the event with key. It reports false when the
// event was already handled to completion (by an earlier run, e.g. one Temporal no longer remembers); a run that
// failed before completing leaves its claim open for the next one.
func (db *DB) ClaimEventReceipt(ctx context.Context, workspaceID, key, eventType, workflowID, runID string) (bool, error) {
	var owner string
	var completed *time.Time
	err := db.pool.QueryRow(ctx, `
		INSERT INTO event_receipts (workspace_id, idempotency_key, event_type, workflow_id, run_id)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (workspace_id, idempotency_key) DO UPDATE SET
			run_id = CASE WHEN event_receipts.completed_at IS NULL THEN EXCLUDED.run_id ELSE event_receipts.run_id END
		RETURNING run_id, completed_at`, workspaceID, key, eventType, workflowID, runID).Scan(&owner, &completed)
	if err != nil {
		return false, fmt.Errorf("claim event %s: %w", key, err)
	}
	return completed == nil || owner == runID, nil
}

// CompleteEventReceipt marks the event handled; later submissions of its key are duplicates forever.
func (db *DB) CompleteEventReceipt(ctx context.Context, workspaceID, key string) error {
	_, err := db.pool.Exec(ctx, `UPDATE event_receipts SET completed_at = coalesce(completed_at, now())
		WHERE workspace_id = $1 AND idempotency_key = $2`, workspaceID, key)
	if err != nil {
		return fmt.Errorf("complete event %s: %w", key, err)
	}
	return nil
}
