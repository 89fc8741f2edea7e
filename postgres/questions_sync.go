package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// RecordIssueCreated records that Linear holds the question's issue, with the values it was created with at `at`.
func (db *DB) RecordIssueCreated(ctx context.Context, questionID string, link linsync.IssueLink, pushed map[string]linsync.PushedField, at time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE id::text = $1`, questionID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE questions SET issue_created = true, linear_identifier = $2, linear_url = $3,
			team_id = $4 WHERE id = $1`, q.ID, link.Identifier, link.URL, link.TeamID); err != nil {
			return fmt.Errorf("record issue of question %s: %w", q.ID, err)
		}
		return recordPush(ctx, tx, q, pushed, at)
	})
}

// BeginPush stores, before the issueUpdate, the values about to be written (see FieldState.Pushing), so that the
// webhook of the write is recognised even if it arrives before RecordPush; at is now, on linsync's clock.
func (db *DB) BeginPush(ctx context.Context, questionID string, pushed map[string]linsync.PushedField, at time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE id::text = $1`, questionID)
		if err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(pushed)) {
			p := pushed[name]
			if err := saveField(ctx, tx, q.ID, name, linsync.MarkPushing(q.Fields[name], p.Value, p.LinearValue, at)); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordPush records a successful issueUpdate of the given fields, which Linear stamped at `at`.
func (db *DB) RecordPush(ctx context.Context, questionID string, pushed map[string]linsync.PushedField, at time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE id::text = $1`, questionID)
		if err != nil {
			return err
		}
		return recordPush(ctx, tx, q, pushed, at)
	})
}

func recordPush(ctx context.Context, tx pgx.Tx, q *linsync.Question, pushed map[string]linsync.PushedField, at time.Time) error {
	for _, name := range slices.Sorted(maps.Keys(pushed)) {
		p := pushed[name]
		if err := saveField(ctx, tx, q.ID, name, linsync.MergePush(q.Fields[name], p.Value, p.LinearValue, at)); err != nil {
			return err
		}
	}
	return nil
}

// SetSyncWarning records something the user should know about the sync that is not a failure (an unmatched
// email), with its audit entry.
func (db *DB) SetSyncWarning(ctx context.Context, questionID, warning string, e linsync.AuditEntry) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE questions SET sync_warning = $2, updated_at = now() WHERE id::text = $1`,
			questionID, warning); err != nil {
			return fmt.Errorf("set sync warning of question %s: %w", questionID, err)
		}
		return addAudit(ctx, tx, questionID, e)
	})
}

// ClearSyncWarning forgets a warning once its cause is gone (e.g. the assignee now matches a Linear user).
func (db *DB) ClearSyncWarning(ctx context.Context, questionID string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE questions SET sync_warning = '' WHERE id::text = $1 AND sync_warning <> ''`,
		questionID); err != nil {
		return fmt.Errorf("clear sync warning of question %s: %w", questionID, err)
	}
	return nil
}

// MarkArchiveSynced records that the archive policy was applied in Linear.
func (db *DB) MarkArchiveSynced(ctx context.Context, questionID string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE questions SET archive_synced = true WHERE id::text = $1`, questionID); err != nil {
		return fmt.Errorf("mark archive of question %s synced: %w", questionID, err)
	}
	return nil
}

// QuestionSyncWork reads what a question still needs from Linear.
func (db *DB) QuestionSyncWork(ctx context.Context, questionID string) (*linsync.SyncWork, error) {
	q, err := db.QuestionByID(ctx, questionID)
	if err != nil {
		return nil, err
	}
	w := &linsync.SyncWork{Linked: q.Linked, NeedIssue: !q.IssueCreated, NeedPush: q.NeedsPush(),
		NeedArchive: q.ArchivedAt != nil && !q.ArchiveSynced}
	if w.PendingReplies, err = db.PendingReplyIDs(ctx, questionID); err != nil {
		return nil, err
	}
	return w, nil
}

// FinishSync sets the question's sync state from what is left to do: synced when nothing, pending otherwise.
func (db *DB) FinishSync(ctx context.Context, questionID string) (string, error) {
	w, err := db.QuestionSyncWork(ctx, questionID)
	if err != nil {
		return "", err
	}
	state := linsync.SyncPending
	switch {
	case !w.Linked:
		state = linsync.SyncUnlinked
	case w.Empty():
		state = linsync.SyncSynced
	}
	// A pass that ends pending or synced is not a failure: the failure count restarts.
	_, err = db.pool.Exec(ctx, `UPDATE questions SET sync_state = $2, sync_attempts = 0, sync_attempted_at = now(),
		sync_reason = CASE WHEN $2 = 'unlinked' THEN sync_reason ELSE '' END WHERE id::text = $1`, questionID, state)
	if err != nil {
		return "", fmt.Errorf("finish sync of question %s: %w", questionID, err)
	}
	return state, nil
}

// MarkSyncFailed records why a question could not be written to Linear and adds the attempts the failed pass made
// (each of its retries at Linear counts); the next change or reconciliation (UnsyncedQuestions) retries.
func (db *DB) MarkSyncFailed(ctx context.Context, questionID, reason string, attempts int) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE questions SET sync_state = 'failed', sync_reason = $2,
			sync_attempts = sync_attempts + $3, sync_attempted_at = now() WHERE id::text = $1
			AND linked`, questionID, reason, attempts); err != nil {
			return fmt.Errorf("mark sync of question %s failed: %w", questionID, err)
		}
		return addAudit(ctx, tx, questionID, linsync.AuditEntry{Kind: linsync.AuditSyncFailed, Detail: map[string]any{"reason": reason}})
	})
}
