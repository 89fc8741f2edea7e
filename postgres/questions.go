package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

const questionColumns = `id::text, workspace_id::text, external_id, title, body, asker_email, team_id, linear_issue_id,
	issue_created, linear_identifier, linear_url, linked, sync_state, sync_reason, sync_warning, archived_at,
	archive_synced, created_at, updated_at`

func scanQuestion(row pgx.Row) (*linsync.Question, error) {
	var q linsync.Question
	err := row.Scan(&q.ID, &q.WorkspaceID, &q.ExternalID, &q.Title, &q.Body, &q.AskerEmail, &q.TeamID, &q.LinearIssueID,
		&q.IssueCreated, &q.LinearIdentifier, &q.LinearURL, &q.Linked, &q.SyncState, &q.SyncReason, &q.SyncWarning,
		&q.ArchivedAt, &q.ArchiveSynced, &q.CreatedAt, &q.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return &q, nil
}

// querier is what both the pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// loadFields fills q.Fields.
func loadFields(ctx context.Context, db querier, q *linsync.Question) error {
	rows, err := db.Query(ctx, `SELECT field, value, source, source_at, coalesce(linear_value, ''),
		coalesce(synced_value, ''), coalesce(linear_at, 'epoch'::timestamptz), pushing_value IS NOT NULL,
		coalesce(pushing_value, ''), coalesce(pushing_linear, ''), coalesce(pushing_at, 'epoch'::timestamptz), written_at
		FROM question_fields WHERE question_id = $1`, q.ID)
	if err != nil {
		return fmt.Errorf("query fields of question %s: %w", q.ID, err)
	}
	defer rows.Close()
	q.Fields = map[string]linsync.FieldState{}
	for rows.Next() {
		var name string
		var f linsync.FieldState
		if err := rows.Scan(&name, &f.Value, &f.Source, &f.SourceAt, &f.LinearValue, &f.SyncedValue, &f.LinearAt,
			&f.Pushing, &f.PushValue, &f.PushLinear, &f.PushAt, &f.Writes); err != nil {
			return fmt.Errorf("scan field of question %s: %w", q.ID, err)
		}
		if f.LinearAt.Equal(time.Unix(0, 0)) {
			f.LinearAt = time.Time{}
		}
		q.Fields[name] = f
	}
	return rows.Err()
}

func saveField(ctx context.Context, tx pgx.Tx, questionID, name string, f linsync.FieldState) error {
	var linearAt *time.Time
	if !f.LinearAt.IsZero() {
		linearAt = &f.LinearAt
	}
	var pushValue, pushLinear *string
	var pushAt *time.Time
	if f.Pushing {
		pushValue, pushLinear, pushAt = &f.PushValue, &f.PushLinear, &f.PushAt
	}
	writes := f.Writes
	if writes == nil {
		writes = []time.Time{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO question_fields (question_id, field, value, source, source_at, linear_value,
			synced_value, linear_at, pushing_value, pushing_linear, pushing_at, written_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (question_id, field) DO UPDATE SET value = EXCLUDED.value, source = EXCLUDED.source,
			source_at = EXCLUDED.source_at, linear_value = EXCLUDED.linear_value, synced_value = EXCLUDED.synced_value,
			linear_at = EXCLUDED.linear_at, pushing_value = EXCLUDED.pushing_value, pushing_linear = EXCLUDED.pushing_linear,
			pushing_at = EXCLUDED.pushing_at,
			written_at = EXCLUDED.written_at`,
		questionID, name, f.Value, f.Source, f.SourceAt, f.LinearValue, f.SyncedValue, linearAt, pushValue, pushLinear, pushAt, writes)
	if err != nil {
		return fmt.Errorf("save field %s of question %s: %w", name, questionID, err)
	}
	return nil
}

func addAudit(ctx context.Context, tx pgx.Tx, questionID string, e linsync.AuditEntry) error {
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("encode audit detail: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO question_audit (question_id, kind, field, detail) VALUES ($1, $2, $3, $4)`,
		questionID, e.Kind, e.Field, detail); err != nil {
		return fmt.Errorf("record audit of question %s: %w", questionID, err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// CreateQuestion stores a new question with its Linear issue id chosen now, before any call to Linear. A question
// with the same external id in the workspace is returned instead (created false), so the app can retry a create.
func (db *DB) CreateQuestion(ctx context.Context, in linsync.QuestionInput) (*linsync.Question, bool, error) {
	var id string
	created := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var ext *string
		if in.ExternalID != "" {
			ext = &in.ExternalID
		}
		err := tx.QueryRow(ctx, `INSERT INTO questions (id, workspace_id, external_id, title, body, asker_email, team_id,
				linear_issue_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
			ON CONFLICT ON CONSTRAINT questions_external_id_key DO NOTHING RETURNING id::text`,
			uuid.NewString(), in.WorkspaceID, ext, in.Title, in.Body, linsync.NormalizeEmail(in.AskerEmail), in.TeamID,
			uuid.NewString(), in.At).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return tx.QueryRow(ctx, `SELECT id::text FROM questions WHERE workspace_id = $1 AND external_id = $2`,
				in.WorkspaceID, in.ExternalID).Scan(&id)
		}
		if err != nil {
			return fmt.Errorf("insert question: %w", err)
		}
		created = true
		values := map[string]string{linsync.FieldStatus: linsync.StatusOpen, linsync.FieldAssignee: linsync.NormalizeEmail(in.AssigneeEmail),
			linsync.FieldPriority: strconv.Itoa(in.Priority), linsync.FieldTitle: in.Title, linsync.FieldBody: in.Body}
		for _, name := range linsync.SyncedFields {
			// Nothing is in Linear yet: SyncedValue "" marks every field as still to be written.
			if err := saveField(ctx, tx, id, name, linsync.FieldState{Value: values[name], Source: linsync.SourceApp, SourceAt: in.At}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	q, err := db.FindQuestion(ctx, in.WorkspaceID, id)
	return q, created, err
}

// FindQuestion returns a workspace's question with its fields; ENOTFOUND for another workspace's.
func (db *DB) FindQuestion(ctx context.Context, workspaceID, id string) (*linsync.Question, error) {
	return findQuestion(ctx, db.pool, `WHERE workspace_id = $1 AND id::text = $2`, workspaceID, id)
}

func findQuestion(ctx context.Context, db querier, where string, args ...any) (*linsync.Question, error) {
	q, err := scanQuestion(db.QueryRow(ctx, `SELECT `+questionColumns+` FROM questions `+where, args...))
	if err != nil {
		return nil, notFound(err, "question")
	}
	if err := loadFields(ctx, db, q); err != nil {
		return nil, err
	}
	return q, nil
}

// ListQuestions returns a page of a workspace's questions ordered by last update, and the cursor of the next page
// ("" when this is the last).
func (db *DB) ListQuestions(ctx context.Context, workspaceID string, f linsync.QuestionFilter) ([]*linsync.Question, string, error) {
	where := []string{"q.workspace_id = $1", "q.archived_at IS NULL"}
	args := []any{workspaceID}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.Status != "" {
		where = append(where, `EXISTS (SELECT 1 FROM question_fields f WHERE f.question_id = q.id AND f.field = 'status'
			AND f.value = `+arg(f.Status)+`)`)
	}
	if f.AssigneeEmail != "" {
		where = append(where, `EXISTS (SELECT 1 FROM question_fields f WHERE f.question_id = q.id
			AND f.field = 'assignee_email' AND f.value = `+arg(linsync.NormalizeEmail(f.AssigneeEmail))+`)`)
	}
	if f.UpdatedSince != nil {
		where = append(where, "q.updated_at >= "+arg(*f.UpdatedSince))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(q.updated_at, q.id) > ("+arg(at)+", "+arg(id)+"::uuid)")
	}
	limit := f.Limit
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	rows, err := db.pool.Query(ctx, `SELECT `+questionColumns+` FROM questions q WHERE `+strings.Join(where, " AND ")+` ORDER BY q.updated_at, q.id LIMIT `+arg(limit+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list questions: %w", err)
	}
	var out []*linsync.Question
	for rows.Next() {
		q, err := scanQuestion(rows)
		if err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("scan question: %w", err)
		}
		out = append(out, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list questions: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(last.UpdatedAt, last.ID)
	}
	for _, q := range out {
		if err := loadFields(ctx, db.pool, q); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	bad := &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API returned"}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	at, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || uuid.Validate(id) != nil {
		return time.Time{}, "", bad
	}
	return at, id, nil
}

// lockQuestion reads a question and its fields under a row lock, so changes from both sides apply one at a time.
func lockQuestion(ctx context.Context, tx pgx.Tx, where string, args ...any) (*linsync.Question, error) {
	return findQuestion(ctx, tx, where+` FOR UPDATE`, args...)
}

// UpdateQuestionFromApp applies the app's edits made at `at`, field by field (see MergeApp), and reports whether
// anything changed. An archived question cannot be edited.
func (db *DB) UpdateQuestionFromApp(ctx context.Context, workspaceID, id string, changes map[string]string, at time.Time) (*linsync.Question, bool, error) {
	changed := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE workspace_id = $1 AND id::text = $2`, workspaceID, id)
		if err != nil {
			return err
		}
		if q.ArchivedAt != nil {
			return linsync.Errorf(linsync.ECONFLICT, "question %s is archived", id)
		}
		for _, name := range linsync.SyncedFields {
			v, ok := changes[name]
			if !ok {
				continue
			}
			f, ch, audit := linsync.MergeApp(q.Fields[name], v, at)
			if audit != nil {
				audit.Field = name
				if err := addAudit(ctx, tx, q.ID, *audit); err != nil {
					return err
				}
			}
			if !ch {
				continue
			}
			changed = true
			if err := saveField(ctx, tx, q.ID, name, f); err != nil {
				return err
			}
		}
		if !changed {
			return nil
		}
		return touchQuestion(ctx, tx, q, changes)
	})
	if err != nil {
		return nil, false, err
	}
	q, err := db.FindQuestion(ctx, workspaceID, id)
	return q, changed, err
}

// touchQuestion mirrors title and body onto the question row and marks it pending when Linear has to be written.
func touchQuestion(ctx context.Context, tx pgx.Tx, q *linsync.Question, changes map[string]string) error {
	title, body := q.Title, q.Body
	if v, ok := changes[linsync.FieldTitle]; ok {
		title = v
	}
	if v, ok := changes[linsync.FieldBody]; ok {
		body = v
	}
	_, err := tx.Exec(ctx, `UPDATE questions SET title = $2, body = $3, updated_at = now(),
		sync_state = CASE WHEN linked THEN 'pending' ELSE sync_state END WHERE id = $1`, q.ID, title, body)
	if err != nil {
		return fmt.Errorf("update question %s: %w", q.ID, err)
	}
	return nil
}

// ArchiveQuestion archives a question (the app's DELETE); archiving twice changes nothing. noteDone says the
// delete policy needs no further write to Linear (the cancel policy rides on the status write).
func (db *DB) ArchiveQuestion(ctx context.Context, workspaceID, id string, noteDone bool) (*linsync.Question, error) {
	_, err := db.pool.Exec(ctx, `UPDATE questions SET archived_at = now(), updated_at = now(), archive_synced = $3,
		sync_state = CASE WHEN linked THEN 'pending' ELSE sync_state END
		WHERE workspace_id = $1 AND id::text = $2 AND archived_at IS NULL`, workspaceID, id, noteDone)
	if err != nil {
		return nil, fmt.Errorf("archive question %s: %w", id, err)
	}
	return db.FindQuestion(ctx, workspaceID, id)
}

// ListAudit returns a question's audit entries, oldest first.
func (db *DB) ListAudit(ctx context.Context, questionID string) ([]linsync.AuditEntry, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, kind, field, detail, created_at FROM question_audit
		WHERE question_id = $1 ORDER BY id`, questionID)
	if err != nil {
		return nil, fmt.Errorf("list audit of question %s: %w", questionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.AuditEntry, error) {
		var e linsync.AuditEntry
		err := r.Scan(&e.ID, &e.Kind, &e.Field, &e.Detail, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan audit of question %s: %w", questionID, err)
	}
	return out, nil
}

// AddAudit records one audit entry for a question outside any other change.
func (db *DB) AddAudit(ctx context.Context, questionID string, e linsync.AuditEntry) error {
	return db.inTx(ctx, func(tx pgx.Tx) error { return addAudit(ctx, tx, questionID, e) })
}

// QuestionByID returns a question by id alone, for activities that were handed the id by a workflow.
func (db *DB) QuestionByID(ctx context.Context, id string) (*linsync.Question, error) {
	return findQuestion(ctx, db.pool, `WHERE id::text = $1`, id)
}
