package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// Keyset pages of lists a tenant can grow (tokens, access history, replies, audit entries): each page is one indexed
// range query, however far into the list it is, and a cursor is the position of the last item returned, encoded.

func badCursor() error {
	return &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API returned"}
}

// seqCursor encodes the position after a row of a bigserial id.
func seqCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s|" + strconv.FormatInt(id, 10)))
}

func decodeSeqCursor(c string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, badCursor()
	}
	n, ok := strings.CutPrefix(string(raw), "s|")
	id, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || id < 0 {
		return 0, badCursor()
	}
	return id, nil
}

// pageOf cuts a query's rows (asked for one more than the page holds) to the page, and returns the cursor of the next
// page from the last row kept ("" when this page is the last).
func pageOf[T any](rows []T, limit int, cursorOf func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursorOf(rows[limit-1])
}

// TokensPage returns a page of a workspace's tokens, newest first, without secrets.
func (db *DB) TokensPage(ctx context.Context, workspaceID string, p linsync.Page) ([]linsync.APIToken, string, error) {
	at, id := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "ffffffff-ffff-ffff-ffff-ffffffffffff"
	if p.Cursor != "" {
		var err error
		if at, id, err = decodeCursor(p.Cursor); err != nil {
			return nil, "", err
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens t WHERE t.workspace_id = $1
		AND (t.created_at, t.id) < ($2, $3::uuid) ORDER BY t.created_at DESC, t.id DESC LIMIT $4`, workspaceID, at, id, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tokens of workspace %s: %w", workspaceID, err)
	}
	ts, err := pgx.CollectRows(rows, scanToken)
	if err != nil {
		return nil, "", fmt.Errorf("scan tokens: %w", err)
	}
	ts, next := pageOf(ts, p.Limit, func(t linsync.APIToken) string { return encodeCursor(t.CreatedAt, t.ID) })
	return ts, next, nil
}

// AccessEventsPage returns a page of a workspace's access history, newest first.
func (db *DB) AccessEventsPage(ctx context.Context, workspaceID string, p linsync.Page) ([]linsync.AccessEvent, string, error) {
	before := int64(1<<63 - 1)
	if p.Cursor != "" {
		var err error
		if before, err = decodeSeqCursor(p.Cursor); err != nil {
			return nil, "", err
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT id, workspace_id, coalesce(connection_id::text, ''), kind, outcome, detail,
		created_at FROM access_events WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, workspaceID, before, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list access events of workspace %s: %w", workspaceID, err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.AccessEvent, error) {
		var e linsync.AccessEvent
		err := r.Scan(&e.ID, &e.WorkspaceID, &e.ConnectionID, &e.Kind, &e.Outcome, &e.Detail, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("scan access events of workspace %s: %w", workspaceID, err)
	}
	evs, next := pageOf(evs, p.Limit, func(e linsync.AccessEvent) string { return seqCursor(e.ID) })
	return evs, next, nil
}

// RepliesPage returns a page of a question's replies in the order they were written.
func (db *DB) RepliesPage(ctx context.Context, questionID string, p linsync.Page) ([]linsync.Reply, string, error) {
	at, id := time.Time{}, "00000000-0000-0000-0000-000000000000"
	if p.Cursor != "" {
		var err error
		if at, id, err = decodeCursor(p.Cursor); err != nil {
			return nil, "", err
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT `+replyColumns+` FROM question_replies WHERE question_id = $1
		AND (created_at, id) > ($2, $3::uuid) ORDER BY created_at, id LIMIT $4`, questionID, at, id, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list replies of question %s: %w", questionID, err)
	}
	rs, err := pgx.CollectRows(rows, scanReply)
	if err != nil {
		return nil, "", fmt.Errorf("scan replies of question %s: %w", questionID, err)
	}
	rs, next := pageOf(rs, p.Limit, func(r linsync.Reply) string { return encodeCursor(r.CreatedAt, r.ID) })
	return rs, next, nil
}

// AuditPage returns a page of a question's audit entries, oldest first.
func (db *DB) AuditPage(ctx context.Context, questionID string, p linsync.Page) ([]linsync.AuditEntry, string, error) {
	var after int64
	if p.Cursor != "" {
		var err error
		if after, err = decodeSeqCursor(p.Cursor); err != nil {
			return nil, "", err
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT id, kind, field, detail, created_at FROM question_audit
		WHERE question_id = $1 AND id > $2 ORDER BY id LIMIT $3`, questionID, after, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list audit of question %s: %w", questionID, err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.AuditEntry, error) {
		var e linsync.AuditEntry
		err := r.Scan(&e.ID, &e.Kind, &e.Field, &e.Detail, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("scan audit of question %s: %w", questionID, err)
	}
	es, next := pageOf(es, p.Limit, func(e linsync.AuditEntry) string { return seqCursor(e.ID) })
	return es, next, nil
}
