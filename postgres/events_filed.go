package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// Filed issue statuses: pending until Linear has the issue, created after, capped when the hourly cap sent its
// events to a digest instead.
const (
	FiledPending = "pending"
	FiledCreated = "created"
	FiledCapped  = "capped"
)

// FiledIssue is one Linear issue linsync filed for events, or would have filed had the hourly cap not sent its
// events to a digest.
type FiledIssue struct {
	// ID is the Linear issue's id, chosen by linsync before issueCreate.
	ID              string     `json:"id"`
	WorkspaceID     string     `json:"-"`
	Kind            string     `json:"kind"`
	DedupKey        string     `json:"dedup_key"`
	WindowStart     time.Time  `json:"window_start"`
	WindowEnd       *time.Time `json:"window_end,omitempty"`
	TeamID          string     `json:"team_id"`
	RuleIndex       int        `json:"rule_index"`
	Labels          []string   `json:"labels"`
	Priority        int        `json:"priority"`
	Status          string     `json:"status"`
	DigestIssueID   *string    `json:"digest_issue_id,omitempty"`
	PreviousIssueID *string    `json:"previous_issue_id,omitempty"`
	Identifier      string     `json:"identifier,omitempty"`
	URL             string     `json:"url,omitempty"`
	Title           string     `json:"title,omitempty"`
	AppliedHash     string     `json:"-"`
	AppliedLabels   []string   `json:"-"`
	EntryCount      int        `json:"entry_count"`
	// Links are the short links of the issue's entries, in arrival order (filled by ListFiledIssues).
	Links     []string  `json:"links"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// FiledEntry is one thing an issue is about: a broken link of the host, a capped event in a digest, a trigger.
type FiledEntry struct {
	// Key dedupes within the issue: the link id for broken links, so a repeated link changes nothing.
	Key      string `json:"key"`
	EventKey string `json:"event_key"`
	// SourceKey names, in a digest, the issue the entry would have gone to.
	SourceKey string    `json:"source_key,omitempty"`
	ShortURL  string    `json:"short_url,omitempty"`
	Event     Event     `json:"event"`
	AddedAt   time.Time `json:"added_at,omitzero"`
}

// FiledIssueInput is an issue to record (or find) with entries to add to it.
type FiledIssueInput struct {
	ID          string
	WorkspaceID string
	Kind        string
	DedupKey    string
	WindowStart time.Time
	WindowEnd   *time.Time
	TeamID      string
	RuleIndex   int
	Labels      []string
	Priority    int
	Entries     []FiledEntry
}

const filedColumns = `id::text, workspace_id::text, kind, dedup_key, window_start, window_end, team_id, rule_index,
	label_names, priority, status, digest_issue_id::text, previous_issue_id::text, identifier, url, title,
	applied_hash, applied_labels, entry_count, created_at, updated_at`

func scanFiled(r pgx.Row, f *FiledIssue) error {
	err := r.Scan(&f.ID, &f.WorkspaceID, &f.Kind, &f.DedupKey, &f.WindowStart, &f.WindowEnd, &f.TeamID,
		&f.RuleIndex, &f.Labels, &f.Priority, &f.Status, &f.DigestIssueID, &f.PreviousIssueID, &f.Identifier,
		&f.URL, &f.Title, &f.AppliedHash, &f.AppliedLabels, &f.EntryCount, &f.CreatedAt, &f.UpdatedAt)
	f.WindowStart = f.WindowStart.UTC()
	if f.WindowEnd != nil {
		w := f.WindowEnd.UTC()
		f.WindowEnd = &w
	}
	return err
}

// RecordFiling makes sure the issue's row exists (its id persisted before anything is sent to Linear), merges the
// labels and priority of the events routed to it, and adds entries not seen before. It returns the row and how
// many entries were new; adding the same entries again changes nothing.
func (db *DB) RecordFiling(ctx context.Context, in FiledIssueInput) (*FiledIssue, int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("begin filing: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	labels := in.Labels
	if labels == nil {
		labels = []string{}
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO filed_issues (id, workspace_id, kind, dedup_key, window_start, window_end, team_id, rule_index,
			label_names, priority, status, previous_issue_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending',
			(SELECT id FROM filed_issues WHERE workspace_id = $2 AND dedup_key = $4 AND window_start < $5
			 ORDER BY window_start DESC LIMIT 1))
		ON CONFLICT (workspace_id, dedup_key, window_start) DO NOTHING`,
		in.ID, in.WorkspaceID, in.Kind, in.DedupKey, in.WindowStart, in.WindowEnd, in.TeamID, in.RuleIndex, labels,
		in.Priority)
	if err != nil {
		return nil, 0, fmt.Errorf("insert filed issue %s: %w", in.DedupKey, err)
	}
	var f FiledIssue
	row := tx.QueryRow(ctx, `SELECT `+filedColumns+` FROM filed_issues
		WHERE workspace_id = $1 AND dedup_key = $2 AND window_start = $3 FOR UPDATE`,
		in.WorkspaceID, in.DedupKey, in.WindowStart)
	if err := scanFiled(row, &f); err != nil {
		return nil, 0, notFound(err, "filed issue")
	}
	merged := MergeLabels(f.Labels, in.Labels)
	prio := MoreUrgent(f.Priority, in.Priority)
	if len(merged) != len(f.Labels) || prio != f.Priority {
		if _, err := tx.Exec(ctx, `UPDATE filed_issues SET label_names = $2, priority = $3, updated_at = now()
			WHERE id = $1`, f.ID, merged, prio); err != nil {
			return nil, 0, fmt.Errorf("merge labels of filed issue %s: %w", f.ID, err)
		}
		f.Labels, f.Priority = merged, prio
	}

	added := 0
	if len(in.Entries) > 0 {
		keys := make([]string, len(in.Entries))
		eventKeys := make([]string, len(in.Entries))
		sources := make([]string, len(in.Entries))
		shorts := make([]string, len(in.Entries))
		events := make([]string, len(in.Entries))
		for i, e := range in.Entries {
			raw, err := json.Marshal(e.Event)
			if err != nil {
				return nil, 0, fmt.Errorf("encode event %s: %w", e.EventKey, err)
			}
			keys[i], eventKeys[i], sources[i], shorts[i], events[i] = e.Key, e.EventKey, e.SourceKey, e.ShortURL, string(raw)
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO filed_issue_entries (issue_id, entry_key, event_key, source_key, short_url, event)
			SELECT $1, k, ek, sk, su, ev::jsonb
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(k, ek, sk, su, ev, n)
			ORDER BY n
			ON CONFLICT (issue_id, entry_key) DO NOTHING`, f.ID, keys, eventKeys, sources, shorts, events)
		if err != nil {
			return nil, 0, fmt.Errorf("add entries to filed issue %s: %w", f.ID, err)
		}
		added = int(tag.RowsAffected())
		if added > 0 {
			if err := tx.QueryRow(ctx, `UPDATE filed_issues SET entry_count = entry_count + $2, updated_at = now()
				WHERE id = $1 RETURNING entry_count`, f.ID, added).Scan(&f.EntryCount); err != nil {
				return nil, 0, fmt.Errorf("count entries of filed issue %s: %w", f.ID, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, 0, fmt.Errorf("commit filing %s: %w", f.ID, err)
	}
	return &f, added, nil
}

// MergeLabels returns a followed by the names of b it lacks, ignoring case.
func MergeLabels(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	seen := map[string]bool{}
	for _, l := range append(append([]string{}, a...), b...) {
		k := strings.ToLower(strings.TrimSpace(l))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// MoreUrgent returns the more urgent of two Linear priorities (1 urgent … 4 low; 0, no priority, loses to any).
func MoreUrgent(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// Filing is a filed issue locked for one round of talking to Linear: only one worker at a time renders and writes
// an issue, so a slower writer can never overwrite a newer description with an older one.
type Filing struct {
	tx    pgx.Tx
	Issue FiledIssue
}

// BeginFiling locks the filed issue id until Commit or Rollback.
func (db *DB) BeginFiling(ctx context.Context, id string) (*Filing, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin filing %s: %w", id, err)
	}
	f := &Filing{tx: tx}
	if err := scanFiled(tx.QueryRow(ctx, `SELECT `+filedColumns+` FROM filed_issues WHERE id = $1 FOR UPDATE`, id), &f.Issue); err != nil {
		_ = tx.Rollback(ctx)
		return nil, notFound(err, "filed issue")
	}
	return f, nil
}

// Commit keeps what the filing recorded and releases the lock.
func (f *Filing) Commit(ctx context.Context) error {
	if err := f.tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit filing %s: %w", f.Issue.ID, err)
	}
	return nil
}

// Rollback releases the lock, keeping nothing; after Commit it does nothing.
func (f *Filing) Rollback(ctx context.Context) { _ = f.tx.Rollback(ctx) }

// Entries returns the issue's entries in arrival order.
func (f *Filing) Entries(ctx context.Context) ([]FiledEntry, error) {
	rows, err := f.tx.Query(ctx, `SELECT entry_key, event_key, source_key, short_url, event, added_at
		FROM filed_issue_entries WHERE issue_id = $1 ORDER BY seq`, f.Issue.ID)
	if err != nil {
		return nil, fmt.Errorf("query entries of filed issue %s: %w", f.Issue.ID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FiledEntry, error) {
		var e FiledEntry
		var raw []byte
		if err := r.Scan(&e.Key, &e.EventKey, &e.SourceKey, &e.ShortURL, &raw, &e.AddedAt); err != nil {
			return e, err
		}
		return e, json.Unmarshal(raw, &e.Event)
	})
	if err != nil {
		return nil, fmt.Errorf("scan entries of filed issue %s: %w", f.Issue.ID, err)
	}
	return out, nil
}

// Previous returns the issue of the window before this one, or nil.
func (f *Filing) Previous(ctx context.Context) (*FiledIssue, error) {
	if f.Issue.PreviousIssueID == nil {
		return nil, nil
	}
	var p FiledIssue
	if err := scanFiled(f.tx.QueryRow(ctx, `SELECT `+filedColumns+` FROM filed_issues WHERE id = $1`, *f.Issue.PreviousIssueID), &p); err != nil {
		return nil, notFound(err, "previous filed issue")
	}
	return &p, nil
}

// ReserveSlot asks for one of the team's cap new issues in hour. The answer is kept per issue, so asking again
// (a retried activity) gives the same answer and counts once; the counter row serialises concurrent requests.
func (f *Filing) ReserveSlot(ctx context.Context, hour time.Time, capPerHour int) (bool, error) {
	var granted bool
	err := f.tx.QueryRow(ctx, `SELECT granted FROM issue_creation_slots WHERE issue_id = $1`, f.Issue.ID).Scan(&granted)
	if err == nil {
		return granted, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("query creation slot of %s: %w", f.Issue.ID, err)
	}
	var issued int
	err = f.tx.QueryRow(ctx, `
		INSERT INTO issue_creation_counts (workspace_id, team_id, hour, issued) VALUES ($1, $2, $3, 0)
		ON CONFLICT (workspace_id, team_id, hour) DO UPDATE SET issued = issue_creation_counts.issued
		RETURNING issued`, f.Issue.WorkspaceID, f.Issue.TeamID, hour).Scan(&issued)
	if err != nil {
		return false, fmt.Errorf("lock creation count of team %s: %w", f.Issue.TeamID, err)
	}
	granted = issued < capPerHour
	if granted {
		if _, err := f.tx.Exec(ctx, `UPDATE issue_creation_counts SET issued = issued + 1
			WHERE workspace_id = $1 AND team_id = $2 AND hour = $3`, f.Issue.WorkspaceID, f.Issue.TeamID, hour); err != nil {
			return false, fmt.Errorf("count creation for team %s: %w", f.Issue.TeamID, err)
		}
	}
	if _, err := f.tx.Exec(ctx, `INSERT INTO issue_creation_slots (issue_id, team_id, hour, granted) VALUES ($1, $2, $3, $4)`,
		f.Issue.ID, f.Issue.TeamID, hour, granted); err != nil {
		return false, fmt.Errorf("record creation slot of %s: %w", f.Issue.ID, err)
	}
	return granted, nil
}

// MarkCapped records that the cap sent the issue's events to a digest, digestID (the hour's digest; it may not
// exist yet, hence no foreign key).
func (f *Filing) MarkCapped(ctx context.Context, digestID string) error {
	if _, err := f.tx.Exec(ctx, `UPDATE filed_issues SET status = 'capped', digest_issue_id = $2, updated_at = now()
		WHERE id = $1`, f.Issue.ID, digestID); err != nil {
		return fmt.Errorf("mark filed issue %s capped: %w", f.Issue.ID, err)
	}
	f.Issue.Status, f.Issue.DigestIssueID = FiledCapped, &digestID
	return nil
}

// MarkApplied records what Linear now shows for the issue: created (with its identifier and URL) or updated.
func (f *Filing) MarkApplied(ctx context.Context, identifier, url, title, hash string, labels []string) error {
	if labels == nil {
		labels = []string{}
	}
	_, err := f.tx.Exec(ctx, `UPDATE filed_issues SET status = 'created',
		identifier = CASE WHEN $2 = '' THEN identifier ELSE $2 END, url = CASE WHEN $3 = '' THEN url ELSE $3 END,
		title = $4, applied_hash = $5, applied_labels = $6, updated_at = now() WHERE id = $1`,
		f.Issue.ID, identifier, url, title, hash, labels)
	if err != nil {
		return fmt.Errorf("mark filed issue %s applied: %w", f.Issue.ID, err)
	}
	f.Issue.Status = FiledCreated
	return nil
}

// filedCursor is the position after the last issue of a page: newest first, ties broken by id.
type filedCursor struct {
	CreatedAt time.Time `json:"c"`
	ID        string    `json:"i"`
}

// ListFiledIssues returns a page of the workspace's filed issues, newest first, with their links, and the cursor
// of the next page ("" on the last).
func (db *DB) ListFiledIssues(ctx context.Context, workspaceID string, limit int, cursor string) ([]FiledIssue, string, error) {
	if limit <= 0 {
		limit = defaultFiledPageSize
	}
	after := filedCursor{CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || json.Unmarshal(raw, &after) != nil || after.ID == "" {
			return nil, "", &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API returned"}
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT `+filedColumns+` FROM filed_issues
		WHERE workspace_id = $1 AND (created_at, id) < ($2, $3::uuid)
		ORDER BY created_at DESC, id DESC LIMIT $4`, workspaceID, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list filed issues of workspace %s: %w", workspaceID, err)
	}
	issues, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FiledIssue, error) {
		var f FiledIssue
		return f, scanFiled(r, &f)
	})
	if err != nil {
		return nil, "", fmt.Errorf("scan filed issues: %w", err)
	}
	next := ""
	if len(issues) > limit {
		issues = issues[:limit]
		last := issues[len(issues)-1]
		raw, _ := json.Marshal(filedCursor{CreatedAt: last.CreatedAt, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(raw)
	}
	if len(issues) == 0 {
		return []FiledIssue{}, "", nil
	}
	ids := make([]string, len(issues))
	index := map[string]int{}
	for i := range issues {
		ids[i] = issues[i].ID
		index[issues[i].ID] = i
		issues[i].Links = []string{}
	}
	rows, err = db.pool.Query(ctx, `SELECT issue_id::text, short_url FROM filed_issue_entries
		WHERE issue_id = ANY($1::uuid[]) AND short_url <> '' ORDER BY issue_id, seq`, ids)
	if err != nil {
		return nil, "", fmt.Errorf("list links of filed issues: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, short string
		if err := rows.Scan(&id, &short); err != nil {
			return nil, "", fmt.Errorf("scan filed issue link: %w", err)
		}
		i := index[id]
		issues[i].Links = append(issues[i].Links, short)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list links of filed issues: %w", err)
	}
	return issues, next, nil
}

// FiledWindow returns the issue of dedupKey for the window that starts at start or, when start is zero, the newest
// window that had opened by at (open or already closed); nil when there is none. The window of a host's broken
// links lives here, not in a workflow run, so a run that failed does not take its window with it.
func (db *DB) FiledWindow(ctx context.Context, workspaceID, dedupKey string, start, at time.Time) (*FiledIssue, error) {
	var f FiledIssue
	err := scanFiled(db.pool.QueryRow(ctx, `SELECT `+filedColumns+` FROM filed_issues
		WHERE workspace_id = $1 AND dedup_key = $2
			AND CASE WHEN $3::timestamptz IS NULL THEN window_start <= $4 ELSE window_start = $3 END
		ORDER BY window_start DESC LIMIT 1`, workspaceID, dedupKey, nullTime(start), at), &f)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("query window of %s: %w", dedupKey, err)
	}
	return &f, nil
}

// HasFiledEntry reports whether the issue already holds the entry with key.
func (db *DB) HasFiledEntry(ctx context.Context, issueID, key string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM filed_issue_entries WHERE issue_id = $1 AND entry_key = $2)`,
		issueID, key).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("query entry %s of filed issue %s: %w", key, issueID, err)
	}
	return ok, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
