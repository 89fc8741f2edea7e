package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

const replyColumns = `id::text, question_id::text, external_id, body, author_email, author_name, source,
	linear_comment_id, synced, deleted_at, created_at`

func scanReply(r pgx.CollectableRow) (linsync.Reply, error) {
	var x linsync.Reply
	err := r.Scan(&x.ID, &x.QuestionID, &x.ExternalID, &x.Body, &x.AuthorEmail, &x.AuthorName, &x.Source,
		&x.LinearCommentID, &x.Synced, &x.DeletedAt, &x.CreatedAt)
	return x, err
}

// AddReply stores an app reply with its Linear comment id chosen now, before any call to Linear; a reply with the
// same external id on the question is returned instead (created false).
func (db *DB) AddReply(ctx context.Context, in linsync.ReplyInput) (*linsync.Reply, bool, error) {
	q, err := db.FindQuestion(ctx, in.WorkspaceID, in.QuestionID)
	if err != nil {
		return nil, false, err
	}
	if q.ArchivedAt != nil {
		return nil, false, linsync.Errorf(linsync.ECONFLICT, "question %s is archived", q.ID)
	}
	var ext *string
	if in.ExternalID != "" {
		ext = &in.ExternalID
	}
	var id string
	created := true
	err = db.pool.QueryRow(ctx, `INSERT INTO question_replies (id, question_id, workspace_id, external_id, body,
			author_email, source, linear_comment_id) VALUES ($1, $2, $3, $4, $5, $6, 'app', $7)
		ON CONFLICT ON CONSTRAINT question_replies_external_id_key DO NOTHING RETURNING id::text`,
		uuid.NewString(), q.ID, in.WorkspaceID, ext, in.Body, linsync.NormalizeEmail(in.AuthorEmail), uuid.NewString()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		created = false
		err = db.pool.QueryRow(ctx, `SELECT id::text FROM question_replies WHERE question_id = $1 AND external_id = $2`,
			q.ID, in.ExternalID).Scan(&id)
	}
	if err != nil {
		return nil, false, fmt.Errorf("add reply to question %s: %w", q.ID, err)
	}
	if created {
		if _, err := db.pool.Exec(ctx, `UPDATE questions SET updated_at = now(),
			sync_state = CASE WHEN linked THEN 'pending' ELSE sync_state END WHERE id = $1`, q.ID); err != nil {
			return nil, false, fmt.Errorf("touch question %s: %w", q.ID, err)
		}
	}
	r, err := db.FindReply(ctx, id)
	return r, created, err
}

// FindReply returns one reply.
func (db *DB) FindReply(ctx context.Context, id string) (*linsync.Reply, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+replyColumns+` FROM question_replies WHERE id::text = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("query reply %s: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanReply)
	if err != nil {
		return nil, notFound(err, "reply")
	}
	return &r, nil
}

// ListReplies returns a question's replies in the order they were written.
func (db *DB) ListReplies(ctx context.Context, questionID string) ([]linsync.Reply, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+replyColumns+` FROM question_replies WHERE question_id = $1
		ORDER BY created_at, id`, questionID)
	if err != nil {
		return nil, fmt.Errorf("list replies of question %s: %w", questionID, err)
	}
	out, err := pgx.CollectRows(rows, scanReply)
	if err != nil {
		return nil, fmt.Errorf("scan replies of question %s: %w", questionID, err)
	}
	return out, nil
}

// PendingReplyIDs returns the app replies of a question not yet written to Linear, oldest first.
func (db *DB) PendingReplyIDs(ctx context.Context, questionID string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT id::text FROM question_replies WHERE question_id = $1 AND source = 'app'
		AND NOT synced ORDER BY created_at, id`, questionID)
	if err != nil {
		return nil, fmt.Errorf("list pending replies of question %s: %w", questionID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan pending replies of question %s: %w", questionID, err)
	}
	return ids, nil
}

// MarkReplySynced records that Linear holds the reply's comment.
func (db *DB) MarkReplySynced(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE question_replies SET synced = true WHERE id::text = $1`, id); err != nil {
		return fmt.Errorf("mark reply %s synced: %w", id, err)
	}
	return nil
}
