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

// ReconcileWatermark returns the workspace's reconciliation watermark: Linear changes after it may not have been
// applied yet. A workspace reconciled for the first time starts at initial, which is stored.
func (db *DB) ReconcileWatermark(ctx context.Context, workspaceID string, initial time.Time) (time.Time, error) {
	var wm time.Time
	err := db.pool.QueryRow(ctx, `INSERT INTO reconcile_state (workspace_id, watermark) VALUES ($1, $2)
		ON CONFLICT (workspace_id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id
		RETURNING watermark`, workspaceID, initial.UTC()).Scan(&wm)
	if err != nil {
		return time.Time{}, fmt.Errorf("read reconcile watermark of workspace %s: %w", workspaceID, err)
	}
	return wm.UTC(), nil
}

// AdvanceReconcileWatermark moves the watermark forward to to; it never moves back, so a late, retried call of an
// older run cannot undo a newer one.
func (db *DB) AdvanceReconcileWatermark(ctx context.Context, workspaceID string, to time.Time) error {
	_, err := db.pool.Exec(ctx, `UPDATE reconcile_state SET watermark = greatest(watermark, $2), updated_at = now()
		WHERE workspace_id = $1`, workspaceID, to.UTC())
	if err != nil {
		return fmt.Errorf("advance reconcile watermark of workspace %s: %w", workspaceID, err)
	}
	return nil
}

// ReconcileInterval returns the workspace's own reconciliation interval, or 0 when it uses the global default.
func (db *DB) ReconcileInterval(ctx context.Context, workspaceID string) (time.Duration, error) {
	var secs *int
	err := db.pool.QueryRow(ctx, `SELECT interval_seconds FROM reconcile_state WHERE workspace_id = $1`, workspaceID).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && secs == nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read reconcile interval of workspace %s: %w", workspaceID, err)
	}
	return time.Duration(*secs) * time.Second, nil
}

// SetReconcileInterval sets the workspace's reconciliation interval (0 returns it to the global default). A new
// workspace row starts its watermark at now minus an hour, as a first run would.
func (db *DB) SetReconcileInterval(ctx context.Context, workspaceID string, every time.Duration) error {
	var secs *int
	if every != 0 {
		if every < linsync.MinReconcileInterval {
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "interval_seconds",
				Message: fmt.Sprintf("interval_seconds must be 0 (the default) or at least %d", int(linsync.MinReconcileInterval.Seconds()))}
		}
		s := int(every.Seconds())
		secs = &s
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO reconcile_state (workspace_id, watermark, interval_seconds)
		VALUES ($1, now() - interval '1 hour', $2)
		ON CONFLICT (workspace_id) DO UPDATE SET interval_seconds = EXCLUDED.interval_seconds, updated_at = now()`,
		workspaceID, secs)
	if err != nil {
		return fmt.Errorf("set reconcile interval of workspace %s: %w", workspaceID, err)
	}
	return nil
}

// ConnectedWorkspaces returns the ids of workspaces with an active Linear connection: the ones reconciliation runs
// for.
func (db *DB) ConnectedWorkspaces(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT workspace_id::text FROM linear_connections WHERE status = $1
		ORDER BY workspace_id`, linsync.ConnectionActive)
	if err != nil {
		return nil, fmt.Errorf("list connected workspaces: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan connected workspaces: %w", err)
	}
	return ids, nil
}

// LinkedIssues says which of issueIDs reconciliation cares about: issues linked to a question of the workspace, and
// issues linsync filed for its events (Linear has them: status created).
func (db *DB) LinkedIssues(ctx context.Context, workspaceID string, issueIDs []string) (questions, filed map[string]bool, err error) {
	questions, filed = map[string]bool{}, map[string]bool{}
	if len(issueIDs) == 0 {
		return questions, filed, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT linear_issue_id, 'q' FROM questions
			WHERE workspace_id = $1 AND linked AND issue_created AND linear_issue_id = ANY($2)
		UNION ALL
		SELECT id::text, 'f' FROM filed_issues WHERE workspace_id = $1 AND status = $3 AND id::text = ANY($2)`,
		workspaceID, issueIDs, linsync.FiledCreated)
	if err != nil {
		return nil, nil, fmt.Errorf("find linked issues of workspace %s: %w", workspaceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind string
		if err := rows.Scan(&id, &kind); err != nil {
			return nil, nil, fmt.Errorf("scan linked issue: %w", err)
		}
		if kind == "q" {
			questions[id] = true
		} else {
			filed[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("find linked issues of workspace %s: %w", workspaceID, err)
	}
	return questions, filed, nil
}

// RepairFiledIssueLink records the identifier and URL Linear now shows for a filed issue and reports whether the
// identifier differed from what linsync showed (a move to another team changes it): that is drift. A URL that
// differs only in the slug Linear derives from the title (it changes with every title linsync writes, "… and 2 more
// on host") is kept current without being reported as a repair.
func (db *DB) RepairFiledIssueLink(ctx context.Context, workspaceID, issueID, identifier, url string) (bool, error) {
	var moved bool
	err := db.pool.QueryRow(ctx, `
		WITH old AS (SELECT id, identifier FROM filed_issues WHERE workspace_id = $1 AND id::text = $2 FOR UPDATE)
		UPDATE filed_issues f SET identifier = $3, url = $4, updated_at = now()
		FROM old WHERE f.id = old.id AND $3 <> '' AND (f.identifier <> $3 OR f.url <> $4)
		RETURNING old.identifier <> $3`,
		workspaceID, issueID, identifier, url).Scan(&moved)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("repair link of filed issue %s: %w", issueID, err)
	}
	return moved, nil
}

// RecordReconcileRun stores a finished run once: a retried record of the same run reports false and changes nothing.
func (db *DB) RecordReconcileRun(ctx context.Context, r linsync.ReconcileRun) (bool, error) {
	if len(r.Repaired) == 0 {
		r.Repaired = json.RawMessage("[]")
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO reconcile_runs (run_id, workspace_id, workflow_id, watermark_from,
			watermark_to, issues_seen, questions_repaired, filed_repaired, questions_resynced, webhooks_reenabled,
			repaired, started_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (run_id) DO NOTHING`,
		r.RunID, r.WorkspaceID, r.WorkflowID, r.WatermarkFrom.UTC(), r.WatermarkTo.UTC(), r.IssuesSeen,
		r.QuestionsRepaired, r.FiledRepaired, r.QuestionsResynced, r.WebhooksReenabled, r.Repaired, r.StartedAt.UTC())
	if err != nil {
		return false, fmt.Errorf("record reconcile run %s: %w", r.RunID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// ListReconcileRuns returns the workspace's most recent reconciliation runs, newest first.
func (db *DB) ListReconcileRuns(ctx context.Context, workspaceID string, limit int) ([]linsync.ReconcileRun, error) {
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	rows, err := db.pool.Query(ctx, `SELECT run_id, workspace_id::text, workflow_id, watermark_from, watermark_to,
			issues_seen, questions_repaired, filed_repaired, questions_resynced, webhooks_reenabled, repaired,
			started_at, finished_at
		FROM reconcile_runs WHERE workspace_id = $1 ORDER BY finished_at DESC, run_id LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, fmt.Errorf("list reconcile runs of workspace %s: %w", workspaceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.ReconcileRun, error) {
		var x linsync.ReconcileRun
		err := r.Scan(&x.RunID, &x.WorkspaceID, &x.WorkflowID, &x.WatermarkFrom, &x.WatermarkTo, &x.IssuesSeen,
			&x.QuestionsRepaired, &x.FiledRepaired, &x.QuestionsResynced, &x.WebhooksReenabled, &x.Repaired,
			&x.StartedAt, &x.FinishedAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan reconcile runs of workspace %s: %w", workspaceID, err)
	}
	return out, nil
}

// PendingFilings lists up to limit of the workspace's filed issues still pending (not yet created in Linear),
// oldest first.
func (db *DB) PendingFilings(ctx context.Context, workspaceID string, limit int) ([]linsync.PendingFiling, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := db.pool.Query(ctx, `SELECT id::text, kind, dedup_key, entry_count, created_at, updated_at,
			updated_at > now() - $4::interval
		FROM filed_issues WHERE workspace_id = $1 AND status = $2 ORDER BY created_at, id LIMIT $3`,
		workspaceID, linsync.FiledPending, limit, linsync.FilingGrace.String())
	if err != nil {
		return nil, fmt.Errorf("list pending filings of workspace %s: %w", workspaceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.PendingFiling, error) {
		var p linsync.PendingFiling
		err := r.Scan(&p.IssueID, &p.Kind, &p.DedupKey, &p.Entries, &p.CreatedAt, &p.UpdatedAt, &p.Recent)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan pending filings of workspace %s: %w", workspaceID, err)
	}
	return out, nil
}
