package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// UnsyncedQuestions lists up to limit linked questions of a workspace whose sync is pending or failed, the ones
// attempted longest ago (or never) first, so a reconciler working in pages reaches every question.
func (db *DB) UnsyncedQuestions(ctx context.Context, workspaceID string, limit int) ([]linsync.UnsyncedQuestion, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := db.pool.Query(ctx, `SELECT q.id::text, coalesce(q.external_id, ''), q.sync_state, q.sync_reason,
			q.sync_attempts, q.sync_attempted_at,
			NOT q.issue_created, EXISTS (SELECT 1 FROM question_fields f WHERE f.question_id = q.id
				AND f.value IS DISTINCT FROM f.synced_value),
			(SELECT count(*) FROM question_replies r WHERE r.question_id = q.id AND r.source = 'app' AND NOT r.synced),
			q.archived_at IS NOT NULL AND NOT q.archive_synced,
			coalesce(c.status = 'active', false),
			greatest(q.updated_at, coalesce(q.sync_attempted_at, q.updated_at)) > now() - $3::interval
		FROM questions q LEFT JOIN linear_connections c ON c.workspace_id = q.workspace_id
		WHERE q.workspace_id = $1 AND q.linked AND q.sync_state IN ('pending', 'failed')
		ORDER BY q.sync_attempted_at NULLS FIRST, q.updated_at, q.id LIMIT $2`,
		workspaceID, limit, linsync.UnsyncedGrace.String())
	if err != nil {
		return nil, fmt.Errorf("list unsynced questions of workspace %s: %w", workspaceID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.UnsyncedQuestion, error) {
		var u linsync.UnsyncedQuestion
		var needIssue, needPush, needArchive, connected, recent bool
		var replies int
		if err := r.Scan(&u.QuestionID, &u.ExternalID, &u.State, &u.Reason, &u.Attempts, &u.LastAttemptAt,
			&needIssue, &needPush, &replies, &needArchive, &connected, &recent); err != nil {
			return u, err
		}
		if u.Reason == "" {
			u.Reason = pendingReason(needIssue, needPush, replies, needArchive)
		}
		switch {
		case !connected:
			u.NextAction = linsync.NextActionReconnect
		case u.State == linsync.SyncPending && recent:
			u.NextAction = linsync.NextActionWait
		default:
			u.NextAction = linsync.NextActionResync
		}
		return u, nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan unsynced questions of workspace %s: %w", workspaceID, err)
	}
	return out, nil
}

// pendingReason says what a pending question still needs from Linear.
func pendingReason(needIssue, needPush bool, replies int, needArchive bool) string {
	switch {
	case needIssue:
		return "the Linear issue is not created yet"
	case needPush:
		return "field changes are not written to Linear yet"
	case replies > 0:
		return fmt.Sprintf("%d replies are not written to Linear yet", replies)
	case needArchive:
		return "the archive note is not written to Linear yet"
	}
	return "waiting for its sync pass to finish"
}
