package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// ApplyLinearIssue folds an Issue webhook into the question linked to the issue, under the question's row lock,
// field by field (see MergeLinear). A removed issue unlinks the question; a move to another team keeps the link.
func (db *DB) ApplyLinearIssue(ctx context.Context, workspaceID string, st linsync.LinearIssueState) (*linsync.LinearApply, error) {
	res := &linsync.LinearApply{}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE workspace_id = $1 AND linear_issue_id = $2`, workspaceID, st.IssueID)
		if linsync.ErrorCode(err) == linsync.ENOTFOUND {
			return nil
		}
		if err != nil {
			return err
		}
		res.Found, res.QuestionID = true, q.ID
		if q.ExternalID != nil {
			res.ExternalID = *q.ExternalID
		}
		if !q.Linked {
			return nil
		}
		audit := func(e linsync.AuditEntry) error { res.Audits++; return addAudit(ctx, tx, q.ID, e) }
		if st.Removed {
			res.Unlinked = true
			reason := fmt.Sprintf("the Linear issue %s was deleted in Linear; the question is no longer linked", q.LinearIdentifier)
			if _, err := tx.Exec(ctx, `UPDATE questions SET linked = false, sync_state = 'unlinked', sync_reason = $2,
				updated_at = now() WHERE id = $1`, q.ID, reason); err != nil {
				return fmt.Errorf("unlink question %s: %w", q.ID, err)
			}
			return audit(linsync.AuditEntry{Kind: linsync.AuditUnlinked, Detail: map[string]any{"issue_id": st.IssueID, "identifier": q.LinearIdentifier}})
		}
		touch := false
		if st.TeamID != "" && st.TeamID != q.TeamID {
			touch = true
			if err := audit(linsync.AuditEntry{Kind: linsync.AuditMoved, Detail: map[string]any{"from_team": q.TeamID, "to_team": st.TeamID}}); err != nil {
				return err
			}
		}
		if (st.Identifier != "" && st.Identifier != q.LinearIdentifier) || (st.URL != "" && st.URL != q.LinearURL) {
			touch = true
		}
		title, changed := q.Title, map[string]string{}
		for _, name := range linsync.LinearFields {
			v, ok := st.Values[name]
			if !ok {
				continue
			}
			f, ch, e := linsync.MergeLinear(q.Fields[name], v, st.UpdatedAt, st.Edited[name], st.ByOther)
			if e != nil {
				e.Field = name
				if err := audit(*e); err != nil {
					return err
				}
			}
			if ch {
				changed[name] = v
				res.Changed = append(res.Changed, name)
				if name == linsync.FieldTitle {
					title = v
				}
			}
			if f.Dirty() {
				res.NeedsPush = true
			}
			if !f.Equal(q.Fields[name]) {
				if err := saveField(ctx, tx, q.ID, name, f); err != nil {
					return err
				}
			}
		}
		if len(changed) == 0 && !touch {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE questions SET title = $2, team_id = coalesce(nullif($3, ''), team_id),
			linear_identifier = coalesce(nullif($4, ''), linear_identifier), linear_url = coalesce(nullif($5, ''), linear_url),
			updated_at = now() WHERE id = $1`, q.ID, title, st.TeamID, st.Identifier, st.URL)
		if err != nil {
			return fmt.Errorf("apply linear change to question %s: %w", q.ID, err)
		}
		return nil
	})
	return res, err
}

// AddLinearComment stores a Linear comment on a linked issue as a reply. A comment linsync created (its id is one
// of ours) or one already stored changes nothing: created is false.
func (db *DB) AddLinearComment(ctx context.Context, workspaceID string, c linsync.LinearComment) (*linsync.LinearApply, bool, error) {
	res := &linsync.LinearApply{}
	q, err := findQuestion(ctx, db.pool, `WHERE workspace_id = $1 AND linear_issue_id = $2`, workspaceID, c.IssueID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return res, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	res.Found, res.QuestionID = true, q.ID
	if q.ExternalID != nil {
		res.ExternalID = *q.ExternalID
	}
	created := false
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO question_replies (id, question_id, workspace_id, body, author_email,
				author_name, source, linear_comment_id, synced, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'linear', $7, true, $8)
			ON CONFLICT ON CONSTRAINT question_replies_comment_key DO NOTHING`,
			uuid.NewString(), q.ID, workspaceID, c.Body, linsync.NormalizeEmail(c.AuthorEmail), c.AuthorName, c.CommentID, c.CreatedAt)
		if err != nil {
			return fmt.Errorf("store linear comment %s: %w", c.CommentID, err)
		}
		if created = tag.RowsAffected() == 1; !created {
			return nil
		}
		res.Changed = []string{"replies"}
		_, err = tx.Exec(ctx, `UPDATE questions SET updated_at = now() WHERE id = $1`, q.ID)
		return err
	})
	return res, created, err
}

// UpdateLinearComment changes the body of a reply that came from Linear; replies written in the app are the app's.
func (db *DB) UpdateLinearComment(ctx context.Context, workspaceID, commentID, body string, deleted bool) (*linsync.LinearApply, error) {
	res := &linsync.LinearApply{}
	var qid string
	err := db.pool.QueryRow(ctx, `UPDATE question_replies SET body = CASE WHEN $3 THEN body ELSE $4 END,
			deleted_at = CASE WHEN $3 THEN coalesce(deleted_at, now()) ELSE deleted_at END
		WHERE workspace_id = $1 AND linear_comment_id = $2 AND source = 'linear'
			AND (body <> $4 OR ($3 AND deleted_at IS NULL)) RETURNING question_id::text`,
		workspaceID, commentID, deleted, body).Scan(&qid)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update linear comment %s: %w", commentID, err)
	}
	res.Found, res.QuestionID, res.Changed = true, qid, []string{"replies"}
	return res, nil
}

// RememberLinearUser keeps a Linear user's email, so later payloads without one resolve without calling Linear.
func (db *DB) RememberLinearUser(ctx context.Context, workspaceID, userID, email, name string) error {
	if userID == "" || email == "" {
		return nil
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO linear_users (workspace_id, user_id, email, name) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace_id, user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = now()
		WHERE linear_users.email <> EXCLUDED.email OR linear_users.name <> EXCLUDED.name`,
		workspaceID, userID, linsync.NormalizeEmail(email), name)
	if err != nil {
		return fmt.Errorf("remember linear user %s: %w", userID, err)
	}
	return nil
}

// LinearUserEmail returns a remembered Linear user's email, "" when unknown.
func (db *DB) LinearUserEmail(ctx context.Context, workspaceID, userID string) (string, error) {
	var email string
	err := db.pool.QueryRow(ctx, `SELECT email FROM linear_users WHERE workspace_id = $1 AND user_id = $2`,
		workspaceID, userID).Scan(&email)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find linear user %s: %w", userID, err)
	}
	return email, nil
}
