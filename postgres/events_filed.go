package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

const filedColumns = `id::text, workspace_id::text, kind, dedup_key, window_start, window_end, team_id, rule_index,
	label_names, priority, status, digest_issue_id::text, previous_issue_id::text, identifier, url, title,
	applied_hash, applied_labels, entry_count, content_version, applied_version, created_at, updated_at`

func scanFiled(r pgx.Row, f *linsync.FiledIssue) error {
	err := r.Scan(&f.ID, &f.WorkspaceID, &f.Kind, &f.DedupKey, &f.WindowStart, &f.WindowEnd, &f.TeamID,
		&f.RuleIndex, &f.Labels, &f.Priority, &f.Status, &f.DigestIssueID, &f.PreviousIssueID, &f.Identifier,
		&f.URL, &f.Title, &f.AppliedHash, &f.AppliedLabels, &f.EntryCount, &f.ContentVersion, &f.AppliedVersion, &f.CreatedAt, &f.UpdatedAt)
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
func (db *DB) RecordFiling(ctx context.Context, in linsync.FiledIssueInput) (*linsync.FiledIssue, int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("begin filing: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	labels := in.Labels
	if labels == nil {
		labels = []string{}
	}
	if in.TakeStaged && len(in.Entries) == 0 {
		// Nothing to add and no issue yet: an issue is never opened without an entry.
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM filed_issues WHERE workspace_id = $1 AND dedup_key = $2
				AND window_start = $3) OR EXISTS (SELECT 1 FROM aggregator_entries WHERE workspace_id = $1 AND dedup_key = $2)`,
			in.WorkspaceID, in.DedupKey, in.WindowStart).Scan(&found); err != nil {
			return nil, 0, fmt.Errorf("look for entries of %s: %w", in.DedupKey, err)
		}
		if !found {
			return nil, 0, nil
		}
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
	var f linsync.FiledIssue
	row := tx.QueryRow(ctx, `SELECT `+filedColumns+` FROM filed_issues
		WHERE workspace_id = $1 AND dedup_key = $2 AND window_start = $3 FOR UPDATE`,
		in.WorkspaceID, in.DedupKey, in.WindowStart)
	if err := scanFiled(row, &f); err != nil {
		return nil, 0, notFound(err, "filed issue")
	}
	merged := linsync.MergeLabels(f.Labels, in.Labels)
	prio := linsync.MoreUrgent(f.Priority, in.Priority)
	if len(merged) != len(f.Labels) || prio != f.Priority {
		if _, err := tx.Exec(ctx, `UPDATE filed_issues SET label_names = $2, priority = $3,
			content_version = content_version + 1, updated_at = now() WHERE id = $1`, f.ID, merged, prio); err != nil {
			return nil, 0, fmt.Errorf("merge labels of filed issue %s: %w", f.ID, err)
		}
		f.Labels, f.Priority = merged, prio
		f.ContentVersion++
	}

	added := 0
	if len(in.Entries) > 0 {
		cols, err := entryColumns(in.Entries)
		if err != nil {
			return nil, 0, err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO filed_issue_entries (issue_id, entry_key, event_key, source_key, short_url, event)
			SELECT $1, k, ek, sk, su, ev::jsonb
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(k, ek, sk, su, ev, n)
			ORDER BY n
			ON CONFLICT (issue_id, entry_key) DO NOTHING`, append([]any{f.ID}, cols...)...)
		if err != nil {
			return nil, 0, fmt.Errorf("add entries to filed issue %s: %w", f.ID, err)
		}
		added = int(tag.RowsAffected())
	}
	if in.TakeStaged {
		// The queue's lock first: an entry staged meanwhile waits, then finds the queue empty and wakes the
		// aggregator for the next filing.
		if _, err := tx.Exec(ctx, `UPDATE aggregator_queues SET pending = 0 WHERE workspace_id = $1 AND dedup_key = $2`,
			in.WorkspaceID, in.DedupKey); err != nil {
			return nil, 0, fmt.Errorf("empty the queue of %s: %w", in.DedupKey, err)
		}
		var n int
		var labels []string
		var prio int
		err := tx.QueryRow(ctx, `
			WITH taken AS (DELETE FROM aggregator_entries WHERE workspace_id = $2 AND dedup_key = $3
				RETURNING entry_key, event_key, source_key, short_url, event, labels, priority, seq),
			ins AS (INSERT INTO filed_issue_entries (issue_id, entry_key, event_key, source_key, short_url, event)
				SELECT $1, entry_key, event_key, source_key, short_url, event FROM taken ORDER BY seq
				ON CONFLICT (issue_id, entry_key) DO NOTHING RETURNING 1)
			SELECT (SELECT count(*) FROM ins),
				array(SELECT l FROM taken, unnest(taken.labels) WITH ORDINALITY AS u(l, i) ORDER BY taken.seq, u.i),
				coalesce((SELECT min(priority) FROM taken WHERE priority > 0), 0)`,
			f.ID, in.WorkspaceID, in.DedupKey).Scan(&n, &labels, &prio)
		if err != nil {
			return nil, 0, fmt.Errorf("take staged entries into filed issue %s: %w", f.ID, err)
		}
		added += n
		// Routing may have given the entries labels or a priority the issue lacks.
		if merged, p := linsync.MergeLabels(f.Labels, labels), linsync.MoreUrgent(f.Priority, prio); len(merged) != len(f.Labels) || p != f.Priority {
			if err := tx.QueryRow(ctx, `UPDATE filed_issues SET label_names = $2, priority = $3,
				content_version = content_version + 1, updated_at = now() WHERE id = $1 RETURNING content_version`,
				f.ID, merged, p).Scan(&f.ContentVersion); err != nil {
				return nil, 0, fmt.Errorf("merge labels of filed issue %s: %w", f.ID, err)
			}
			f.Labels, f.Priority = merged, p
		}
	}
	if added > 0 {
		if err := tx.QueryRow(ctx, `UPDATE filed_issues SET entry_count = entry_count + $2,
			content_version = content_version + 1, updated_at = now()
			WHERE id = $1 RETURNING entry_count, content_version`, f.ID, added).Scan(&f.EntryCount, &f.ContentVersion); err != nil {
			return nil, 0, fmt.Errorf("count entries of filed issue %s: %w", f.ID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, 0, fmt.Errorf("commit filing %s: %w", f.ID, err)
	}
	return &f, added, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// entryColumns returns entries as the five text arrays (key, event key, source key, short URL, event JSON) that
// unnest turns back into rows.
func entryColumns(entries []linsync.FiledEntry) ([]any, error) {
	keys := make([]string, len(entries))
	eventKeys := make([]string, len(entries))
	sources := make([]string, len(entries))
	shorts := make([]string, len(entries))
	events := make([]string, len(entries))
	for i, e := range entries {
		raw, err := json.Marshal(e.Event)
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", e.EventKey, err)
		}
		keys[i], eventKeys[i], sources[i], shorts[i], events[i] = e.Key, e.EventKey, e.SourceKey, e.ShortURL, string(raw)
	}
	return []any{keys, eventKeys, sources, shorts, events}, nil
}

// AggregatorWakeAfter is how long entries may wait staged after their aggregator was woken before the next entry
// wakes it again: long enough that a busy aggregator is not signalled once per entry, short enough that entries
// left by a run that failed are filed soon after the next one arrives.
const AggregatorWakeAfter = 10 * time.Second

// StageEntries keeps entries for an aggregator's next filing (RecordFiling with TakeStaged). It returns how many
// were new (an entry staged again, or already taken into an issue of dedupKey's open window, changes nothing) and
// whether the aggregator must be woken: nothing was waiting before (a filing took everything, or this is the
// first), or what waits was woken for longer ago than AggregatorWakeAfter.
func (db *DB) StageEntries(ctx context.Context, workspaceID, dedupKey string, entries []linsync.FiledEntry,
	labels []string, priority int) (added int, wake bool, err error) {
	if len(entries) == 0 {
		return 0, false, nil
	}
	cols, err := entryColumns(entries)
	if err != nil {
		return 0, false, err
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO aggregator_entries (workspace_id, dedup_key, entry_key, event_key, source_key, short_url, event,
				labels, priority)
			SELECT $1, $2, k, ek, sk, su, ev::jsonb, $8, $9
			FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS t(k, ek, sk, su, ev, n)
			WHERE NOT EXISTS (SELECT 1 FROM filed_issue_entries e JOIN filed_issues f ON f.id = e.issue_id
				WHERE f.workspace_id = $1 AND f.dedup_key = $2 AND e.entry_key = k AND (f.window_end IS NULL OR f.window_end > now()))
			ORDER BY n
			ON CONFLICT (workspace_id, dedup_key, entry_key) DO NOTHING`,
			append(append([]any{workspaceID, dedupKey}, cols...), nonNil(labels), priority)...)
		if err != nil {
			return err
		}
		added = int(tag.RowsAffected())
		wake, err = queueStaged(ctx, tx, workspaceID, dedupKey, added)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("stage entries of %s: %w", dedupKey, err)
	}
	return added, wake, nil
}

// queueStaged counts added entries in the aggregator's queue and says whether to wake it. The queue's row lock
// orders it with the filing that takes entries (takeStaged).
func queueStaged(ctx context.Context, tx pgx.Tx, workspaceID, dedupKey string, added int) (bool, error) {
	if added == 0 {
		return false, nil
	}
	var wake bool
	err := tx.QueryRow(ctx, `
		INSERT INTO aggregator_queues AS q (workspace_id, dedup_key, pending, woken_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (workspace_id, dedup_key) DO UPDATE SET
			pending = q.pending + EXCLUDED.pending,
			woken_at = CASE WHEN q.pending = 0 OR q.woken_at IS NULL OR q.woken_at < now() - $4::interval
				THEN now() ELSE q.woken_at END
		RETURNING woken_at = now()`, workspaceID, dedupKey, added, AggregatorWakeAfter.String()).Scan(&wake)
	if err != nil {
		return false, fmt.Errorf("queue entries of %s: %w", dedupKey, err)
	}
	return wake, nil
}

// ForwardToDigest stages, for the digest toDedupKey, the entries of a capped issue that have not gone to it yet,
// keyed by the issue they would have gone to; it returns how many it staged and whether to wake the digest's
// aggregator (see StageEntries). Asking again forwards nothing twice.
func (db *DB) ForwardToDigest(ctx context.Context, issueID, toDedupKey string) (staged int, wake bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var workspaceID string
		err := tx.QueryRow(ctx, `
			WITH f AS (SELECT id, workspace_id, dedup_key, forwarded_seq, label_names, priority FROM filed_issues
				WHERE id = $1 FOR UPDATE),
			fwd AS (
				INSERT INTO aggregator_entries (workspace_id, dedup_key, entry_key, event_key, source_key, short_url, event,
					labels, priority)
				SELECT f.workspace_id, $2, f.dedup_key || '|' || e.entry_key, e.event_key, f.dedup_key, e.short_url, e.event,
					f.label_names, f.priority
				FROM filed_issue_entries e JOIN f ON f.id = e.issue_id WHERE e.seq > f.forwarded_seq ORDER BY e.seq
				ON CONFLICT (workspace_id, dedup_key, entry_key) DO NOTHING
				RETURNING 1)
			UPDATE filed_issues SET forwarded_seq = coalesce((SELECT max(seq) FROM filed_issue_entries WHERE issue_id = $1), 0)
			WHERE id = $1 RETURNING workspace_id::text, (SELECT count(*) FROM fwd)`, issueID, toDedupKey).Scan(&workspaceID, &staged)
		if err != nil {
			return err
		}
		wake, err = queueStaged(ctx, tx, workspaceID, toDedupKey, staged)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("forward entries of %s to %s: %w", issueID, toDedupKey, err)
	}
	return staged, wake, nil
}

// PrepareFiling reserves the issue's creation slot (or marks it capped), takes the writer lease when no other live
// writer holds it, and reads what to render, all in one short transaction that commits before anything is sent to
// Linear: no transaction or row lock is held across a Linear call. The lease, not a lock, keeps a second writer
// from overwriting a newer description with an older one.
func (db *DB) PrepareFiling(ctx context.Context, req linsync.FilingRequest) (*linsync.FilingPlan, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin filing %s: %w", req.ID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	p := &linsync.FilingPlan{}
	f := &p.Issue
	var writer string
	var until *time.Time
	err = tx.QueryRow(ctx, `SELECT `+filedColumns+`, writer, writer_until FROM filed_issues WHERE id = $1 FOR UPDATE`, req.ID).Scan(
		&f.ID, &f.WorkspaceID, &f.Kind, &f.DedupKey, &f.WindowStart, &f.WindowEnd, &f.TeamID, &f.RuleIndex, &f.Labels,
		&f.Priority, &f.Status, &f.DigestIssueID, &f.PreviousIssueID, &f.Identifier, &f.URL, &f.Title, &f.AppliedHash,
		&f.AppliedLabels, &f.EntryCount, &f.ContentVersion, &f.AppliedVersion, &f.CreatedAt, &f.UpdatedAt, &writer, &until)
	if err != nil {
		return nil, notFound(err, "filed issue")
	}
	f.WindowStart = f.WindowStart.UTC()
	if f.WindowEnd != nil {
		w := f.WindowEnd.UTC()
		f.WindowEnd = &w
	}

	if f.Status == linsync.FiledPending && !req.Uncapped {
		granted, err := reserveSlot(ctx, tx, f, req.Hour, req.CapPerHour)
		if err != nil {
			return nil, err
		}
		if !granted {
			digestID := req.DigestID(f.TeamID)
			if _, err := tx.Exec(ctx, `UPDATE filed_issues SET status = 'capped', digest_issue_id = $2, updated_at = now()
				WHERE id = $1`, f.ID, digestID); err != nil {
				return nil, fmt.Errorf("mark filed issue %s capped: %w", f.ID, err)
			}
			f.Status, f.DigestIssueID = linsync.FiledCapped, &digestID
		}
	}
	switch {
	case f.Status == linsync.FiledCapped:
	case writer != "" && writer != req.Writer && until != nil && until.After(time.Now()) &&
		(req.Predecessor == "" || !strings.HasPrefix(writer, req.Predecessor)):
		p.Busy, p.BusyUntil = true, *until
	default:
		if _, err := tx.Exec(ctx, `UPDATE filed_issues SET writer = $2, writer_until = $3 WHERE id = $1`,
			f.ID, req.Writer, req.LeaseUntil); err != nil {
			return nil, fmt.Errorf("take writer lease of filed issue %s: %w", f.ID, err)
		}
		if p.Entries, err = filedEntries(ctx, tx, f.ID); err != nil {
			return nil, err
		}
		if p.Previous, err = previousFiled(ctx, tx, f); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit filing %s: %w", f.ID, err)
	}
	return p, nil
}

// FinishFiling records a round's result only when its version is still the newest (compare-and-set), and releases
// the writer's lease in the same statement, so an entry recorded while the round wrote is either seen as Behind
// here or finds the lease free and is filed by its own writer.
func (db *DB) FinishFiling(ctx context.Context, r linsync.FilingResult) (linsync.FinishOutcome, error) {
	labels := r.Labels
	if labels == nil {
		labels = []string{}
	}
	var out linsync.FinishOutcome
	var content, applied int64
	// Every SET reads the row as it is when locked by this statement, so the comparison and the write are one step.
	err := db.pool.QueryRow(ctx, `
		UPDATE filed_issues SET
			status = CASE WHEN applied_version <= $2 THEN 'created' ELSE status END,
			identifier = CASE WHEN applied_version <= $2 AND $4 <> '' THEN $4 ELSE identifier END,
			url = CASE WHEN applied_version <= $2 AND $5 <> '' THEN $5 ELSE url END,
			title = CASE WHEN applied_version <= $2 THEN $6 ELSE title END,
			applied_hash = CASE WHEN applied_version <= $2 THEN $7 ELSE '' END,
			applied_labels = CASE WHEN applied_version <= $2 THEN $8 ELSE applied_labels END,
			applied_version = GREATEST(applied_version, $2),
			writer = CASE WHEN writer = $3 THEN '' ELSE writer END,
			writer_until = CASE WHEN writer = $3 THEN NULL ELSE writer_until END,
			updated_at = now()
		WHERE id = $1
		RETURNING content_version, applied_version`,
		r.ID, r.Version, r.Writer, r.Identifier, r.URL, r.Title, r.Hash, labels).Scan(&content, &applied)
	if err != nil {
		return out, notFound(err, "filed issue")
	}
	// applied_version only grows, so it equals the round's version exactly when the round was the newest.
	out.Recorded = applied == r.Version
	out.Behind = !out.Recorded || content > applied
	return out, nil
}

// ReleaseFiling gives up writer's lease of the issue, if it still holds it: a round that failed lets the next
// writer in at once instead of at its deadline.
func (db *DB) ReleaseFiling(ctx context.Context, id, writer string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE filed_issues SET writer = '', writer_until = NULL WHERE id = $1 AND writer = $2`,
		id, writer); err != nil {
		return fmt.Errorf("release filed issue %s: %w", id, err)
	}
	return nil
}

// filedEntries returns the issue's entries in arrival order.
func filedEntries(ctx context.Context, tx pgx.Tx, id string) ([]linsync.FiledEntry, error) {
	rows, err := tx.Query(ctx, `SELECT entry_key, event_key, source_key, short_url, event, added_at
		FROM filed_issue_entries WHERE issue_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("query entries of filed issue %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.FiledEntry, error) {
		var e linsync.FiledEntry
		var raw []byte
		if err := r.Scan(&e.Key, &e.EventKey, &e.SourceKey, &e.ShortURL, &raw, &e.AddedAt); err != nil {
			return e, err
		}
		return e, json.Unmarshal(raw, &e.Event)
	})
	if err != nil {
		return nil, fmt.Errorf("scan entries of filed issue %s: %w", id, err)
	}
	return out, nil
}

// previousFiled returns the issue of the window before f's, or nil.
func previousFiled(ctx context.Context, tx pgx.Tx, f *linsync.FiledIssue) (*linsync.FiledIssue, error) {
	if f.PreviousIssueID == nil {
		return nil, nil
	}
	var p linsync.FiledIssue
	if err := scanFiled(tx.QueryRow(ctx, `SELECT `+filedColumns+` FROM filed_issues WHERE id = $1`, *f.PreviousIssueID), &p); err != nil {
		return nil, notFound(err, "previous filed issue")
	}
	return &p, nil
}

// reserveSlot asks for one of the team's cap new issues in hour. The answer is kept per issue, so asking again
// (a retried activity) gives the same answer and counts once; the counter row serialises concurrent requests.
// The slot is committed before issueCreate is sent: a create that fails and is retried keeps its slot.
func reserveSlot(ctx context.Context, tx pgx.Tx, f *linsync.FiledIssue, hour time.Time, capPerHour int) (bool, error) {
	var granted bool
	err := tx.QueryRow(ctx, `SELECT granted FROM issue_creation_slots WHERE issue_id = $1`, f.ID).Scan(&granted)
	if err == nil {
		return granted, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("query creation slot of %s: %w", f.ID, err)
	}
	var issued int
	err = tx.QueryRow(ctx, `
		INSERT INTO issue_creation_counts (workspace_id, team_id, hour, issued) VALUES ($1, $2, $3, 0)
		ON CONFLICT (workspace_id, team_id, hour) DO UPDATE SET issued = issue_creation_counts.issued
		RETURNING issued`, f.WorkspaceID, f.TeamID, hour).Scan(&issued)
	if err != nil {
		return false, fmt.Errorf("lock creation count of team %s: %w", f.TeamID, err)
	}
	granted = issued < capPerHour
	if granted {
		if _, err := tx.Exec(ctx, `UPDATE issue_creation_counts SET issued = issued + 1
			WHERE workspace_id = $1 AND team_id = $2 AND hour = $3`, f.WorkspaceID, f.TeamID, hour); err != nil {
			return false, fmt.Errorf("count creation for team %s: %w", f.TeamID, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO issue_creation_slots (issue_id, team_id, hour, granted) VALUES ($1, $2, $3, $4)`,
		f.ID, f.TeamID, hour, granted); err != nil {
		return false, fmt.Errorf("record creation slot of %s: %w", f.ID, err)
	}
	return granted, nil
}

// filedCursor is the position after the last issue of a page: newest first, ties broken by id.
type filedCursor struct {
	CreatedAt time.Time `json:"c"`
	ID        string    `json:"i"`
}

// ListFiledIssues returns a page of the workspace's filed issues, newest first, with their links, and the cursor
// of the next page ("" on the last).
func (db *DB) ListFiledIssues(ctx context.Context, workspaceID string, limit int, cursor string) ([]linsync.FiledIssue, string, error) {
	if limit <= 0 {
		limit = defaultFiledPageSize
	}
	after := filedCursor{CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || json.Unmarshal(raw, &after) != nil || uuid.Validate(after.ID) != nil {
			return nil, "", &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API returned"}
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT `+filedColumns+` FROM filed_issues
		WHERE workspace_id = $1 AND (created_at, id) < ($2, $3::uuid)
		ORDER BY created_at DESC, id DESC LIMIT $4`, workspaceID, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list filed issues of workspace %s: %w", workspaceID, err)
	}
	issues, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linsync.FiledIssue, error) {
		var f linsync.FiledIssue
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
		return []linsync.FiledIssue{}, "", nil
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
	// An issue lists every affected link (thousands for one host): the page ends early rather than carry more than
	// maxFiledPageLinks links, and the cursor continues after the last issue kept.
	links := 0
	for i := range issues {
		links += len(issues[i].Links)
		if i > 0 && links > maxFiledPageLinks {
			issues = issues[:i]
			raw, _ := json.Marshal(filedCursor{CreatedAt: issues[i-1].CreatedAt, ID: issues[i-1].ID})
			next = base64.RawURLEncoding.EncodeToString(raw)
			break
		}
	}
	return issues, next, nil
}

// maxFiledPageLinks bounds the links one page of filed issues carries (about 1 MiB of short URLs).
const maxFiledPageLinks = 20000

// FiledWindow returns the issue of dedupKey for the window that starts at start or, when start is zero, the newest
// window that had opened by at (open or already closed); nil when there is none. The window of a host's broken
// links lives here, not in a workflow run, so a run that failed does not take its window with it.
func (db *DB) FiledWindow(ctx context.Context, workspaceID, dedupKey string, start, at time.Time) (*linsync.FiledIssue, error) {
	var f linsync.FiledIssue
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
