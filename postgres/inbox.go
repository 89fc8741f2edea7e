package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// PutInbox writes a verified item unless the workspace already has its content (a delivery's body) or its key, in
// one round trip: INSERT … ON CONFLICT DO NOTHING RETURNING. It reports whether the item was written, and sets its
// ID when it was; false means a duplicate, which must start nothing.
func (db *DB) PutInbox(ctx context.Context, it *linsync.InboxItem) (bool, error) {
	err := db.pool.QueryRow(ctx, `
		INSERT INTO inbox (workspace_id, kind, source_key, content_hash, workflow_id, input, trace_context,
			received_at, drain_after, keep_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, greatest($9::timestamptz, $8::timestamptz), $10)
		ON CONFLICT DO NOTHING
		RETURNING id`,
		it.WorkspaceID, it.Kind, it.Key, it.ContentHash, it.WorkflowID, it.Input, it.TraceContext,
		it.ReceivedAt, it.DrainAfter, it.KeepUntil).Scan(&it.ID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("put %s %s in the inbox: %w", it.Kind, it.Key, err)
	}
	return true, nil
}

// PutInboxBatch writes several items in one statement (a group commit for concurrent requests), each unless the
// workspace already has its content or its key, or an item before it in the batch has. It reports, item by item,
// whether it was written, and sets the IDs of those that were. Items of kind question, which have no key of their
// own, go through PutInbox.
func (db *DB) PutInboxBatch(ctx context.Context, items []*linsync.InboxItem) ([]bool, error) {
	n := len(items)
	ws, kinds, keys, wfs, traces := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hashes, inputs := make([][]byte, n), make([][]byte, n)
	received, drain, keep := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, it := range items {
		if it.Kind == linsync.InboxQuestion {
			return nil, fmt.Errorf("put inbox batch: question hand-offs go one at a time")
		}
		ws[i], kinds[i], keys[i], wfs[i], traces[i] = it.WorkspaceID, it.Kind, it.Key, it.WorkflowID, it.TraceContext
		hashes[i], inputs[i] = it.ContentHash, it.Input
		received[i], drain[i], keep[i] = it.ReceivedAt, it.DrainAfter, it.KeepUntil
	}
	// WITH ORDINALITY keeps the batch's order, so that of two items with the same key the first is written.
	rows, err := db.pool.Query(ctx, `
		INSERT INTO inbox (workspace_id, kind, source_key, content_hash, workflow_id, input, trace_context,
			received_at, drain_after, keep_until)
		SELECT i.ws, i.kind, i.key, i.hash, i.wf, i.input, i.trace, i.received, greatest(i.drain, i.received), i.keep
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::bytea[], $7::text[],
			$8::timestamptz[], $9::timestamptz[], $10::timestamptz[])
			WITH ORDINALITY AS i (ws, kind, key, hash, wf, input, trace, received, drain, keep, n)
		ORDER BY i.n
		ON CONFLICT DO NOTHING
		RETURNING id, workspace_id::text, kind, source_key, coalesce(content_hash, ''::bytea)`,
		ws, kinds, keys, hashes, wfs, inputs, traces, received, drain, keep)
	if err != nil {
		return nil, fmt.Errorf("put %d items in the inbox: %w", n, err)
	}
	defer rows.Close()
	written := map[string]int64{}
	for rows.Next() {
		var id int64
		var w, kind, key string
		var hash []byte
		if err := rows.Scan(&id, &w, &kind, &key, &hash); err != nil {
			return nil, fmt.Errorf("scan inbox item: %w", err)
		}
		written[w+"\x00"+kind+"\x00"+key+"\x00"+string(hash)] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("put %d items in the inbox: %w", n, err)
	}
	out := make([]bool, n)
	for i, it := range items {
		k := it.WorkspaceID + "\x00" + it.Kind + "\x00" + it.Key + "\x00" + string(it.ContentHash)
		if id, ok := written[k]; ok {
			it.ID, out[i] = id, true
			delete(written, k) // an identical item later in the batch is a duplicate of this one
		}
	}
	return out, nil
}

// PutInboxEvents writes event items, in one round trip, unless their idempotency key is in the inbox already or
// belongs to an event handled to completion (whose inbox record may have been pruned since). It returns the IDs of
// the items written, by key; the others are duplicates.
func (db *DB) PutInboxEvents(ctx context.Context, items []linsync.InboxItem) (map[string]int64, error) {
	out := map[string]int64{}
	if len(items) == 0 {
		return out, nil
	}
	n := len(items)
	ws, keys, wfs, traces := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	inputs := make([][]byte, n)
	received, drain, keep := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, it := range items {
		ws[i], keys[i], wfs[i], traces[i], inputs[i] = it.WorkspaceID, it.Key, it.WorkflowID, it.TraceContext, it.Input
		received[i], drain[i], keep[i] = it.ReceivedAt, it.DrainAfter, it.KeepUntil
	}
	rows, err := db.pool.Query(ctx, `
		INSERT INTO inbox (workspace_id, kind, source_key, workflow_id, input, trace_context, received_at,
			drain_after, keep_until)
		SELECT i.ws, 'event', i.key, i.wf, i.input, i.trace, i.received, greatest(i.drain, i.received), i.keep
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::timestamptz[], $7::timestamptz[],
			$8::timestamptz[]) AS i (ws, key, wf, input, trace, received, drain, keep)
		WHERE NOT EXISTS (SELECT 1 FROM event_receipts r
			WHERE r.workspace_id = i.ws AND r.idempotency_key = i.key AND r.completed_at IS NOT NULL)
		ON CONFLICT DO NOTHING
		RETURNING source_key, id`, ws, keys, wfs, inputs, traces, received, drain, keep)
	if err != nil {
		return nil, fmt.Errorf("put %d events in the inbox: %w", n, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var id int64
		if err := rows.Scan(&key, &id); err != nil {
			return nil, fmt.Errorf("scan inbox event: %w", err)
		}
		out[key] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("put %d events in the inbox: %w", n, err)
	}
	return out, nil
}

// MarkInboxStarted records that the items' workflows started and drops their inputs. Marking twice is harmless.
func (db *DB) MarkInboxStarted(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `UPDATE inbox SET started_at = now(), input = NULL, last_error = ''
		WHERE id = ANY($1) AND started_at IS NULL`, ids)
	if err != nil {
		return fmt.Errorf("mark %d inbox items started: %w", len(ids), err)
	}
	return nil
}

// ReleaseInbox hands items whose workflows have not started to the drainer at once (an API's dispatcher gave up on
// them).
func (db *DB) ReleaseInbox(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `UPDATE inbox SET drain_after = now()
		WHERE id = ANY($1) AND started_at IS NULL AND drain_after > now()`, ids)
	if err != nil {
		return fmt.Errorf("release %d inbox items to the drainer: %w", len(ids), err)
	}
	return nil
}

// maxInboxBackoff caps how long an item whose start failed waits before the drainer tries it again.
const maxInboxBackoff = time.Minute

// DrainInbox claims up to limit items whose workflows have not started and whose dispatch grace has passed, oldest
// first, skipping the ones another drainer holds (FOR UPDATE SKIP LOCKED), and hands them to start, which returns
// what became of each item it tried by ID: nil for started (or found already started), an error otherwise. An item
// start did not try stays as it was. Started items are marked, failed ones wait a growing while, all in the
// transaction that held them, so no two drainers ever hold one item. It returns how many items it claimed.
func (db *DB) DrainInbox(ctx context.Context, limit int, start func(ctx context.Context, items []linsync.InboxItem) map[int64]error) (int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin inbox drain: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `SELECT `+inboxColumns+` FROM inbox
		WHERE started_at IS NULL AND drain_after <= now()
		ORDER BY id
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return 0, fmt.Errorf("claim inbox items: %w", err)
	}
	items, err := pgx.CollectRows(rows, scanInboxItem)
	if err != nil {
		return 0, fmt.Errorf("scan inbox items: %w", err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	results := start(ctx, items)
	var started, failed []int64
	var errs []string
	for _, it := range items {
		err, tried := results[it.ID]
		switch {
		case !tried:
		case err == nil:
			started = append(started, it.ID)
		default:
			failed = append(failed, it.ID)
			msg := err.Error()
			if len(msg) > 1000 {
				msg = msg[:1000]
			}
			errs = append(errs, msg)
		}
	}
	if len(started) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE inbox SET started_at = now(), input = NULL, last_error = ''
			WHERE id = ANY($1)`, started); err != nil {
			return 0, fmt.Errorf("mark drained items started: %w", err)
		}
	}
	if len(failed) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE inbox AS b SET attempts = b.attempts + 1, last_error = f.msg,
			drain_after = now() + least(make_interval(secs => b.attempts + 1), $3::interval)
			FROM unnest($1::bigint[], $2::text[]) AS f (id, msg) WHERE b.id = f.id`,
			failed, errs, maxInboxBackoff); err != nil {
			return 0, fmt.Errorf("record failed inbox starts: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit inbox drain: %w", err)
	}
	return len(items), nil
}

const inboxColumns = `id, workspace_id::text, kind, source_key, content_hash, workflow_id, coalesce(input, ''::bytea),
	trace_context, received_at, drain_after, keep_until, started_at, attempts, last_error`

func scanInboxItem(r pgx.CollectableRow) (linsync.InboxItem, error) {
	var it linsync.InboxItem
	err := r.Scan(&it.ID, &it.WorkspaceID, &it.Kind, &it.Key, &it.ContentHash, &it.WorkflowID, &it.Input,
		&it.TraceContext, &it.ReceivedAt, &it.DrainAfter, &it.KeepUntil, &it.StartedAt, &it.Attempts, &it.LastError)
	return it, err
}

// FindInboxItem returns one item of a workspace's inbox by kind and key (not questions, which have a row per
// hand-off).
func (db *DB) FindInboxItem(ctx context.Context, workspaceID, kind, key string) (*linsync.InboxItem, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+inboxColumns+` FROM inbox
		WHERE workspace_id = $1 AND kind = $2 AND source_key = $3`, workspaceID, kind, key)
	if err != nil {
		return nil, fmt.Errorf("query inbox item %s %s: %w", kind, key, err)
	}
	it, err := pgx.CollectExactlyOneRow(rows, scanInboxItem)
	if err != nil {
		return nil, notFound(err, "inbox item")
	}
	return &it, nil
}

// ClaimDeliveryContent records a delivery's signed content for a delivery whose workflow was started directly,
// without the inbox (Postgres was unreachable when it arrived), and returns the delivery id that owns the content:
// deliveryID when this delivery is the first to bring it, another id when a delivery with the same body came
// first. Only the owner may act on the body.
func (db *DB) ClaimDeliveryContent(ctx context.Context, workspaceID, deliveryID string, contentHash []byte,
	workflowID string, keepUntil time.Time) (string, error) {
	var id int64
	err := db.pool.QueryRow(ctx, `
		INSERT INTO inbox (workspace_id, kind, source_key, content_hash, workflow_id, keep_until, started_at)
		VALUES ($1, 'delivery', $2, $3, $4, $5, now())
		ON CONFLICT DO NOTHING
		RETURNING id`, workspaceID, deliveryID, contentHash, workflowID, keepUntil).Scan(&id)
	switch {
	case err == nil:
		return deliveryID, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("claim content of delivery %s: %w", deliveryID, err)
	}
	// A statement of its own, so that it sees a row another transaction committed while the insert waited on it.
	var owner string
	err = db.pool.QueryRow(ctx, `SELECT source_key FROM inbox
		WHERE workspace_id = $1 AND content_hash = $2`, workspaceID, contentHash).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The conflict was on the delivery id: the same delivery, re-stamped, is in the inbox under the same
		// workflow ID, which Temporal runs once.
		return deliveryID, nil
	case err != nil:
		return "", fmt.Errorf("find owner of the content of delivery %s: %w", deliveryID, err)
	}
	return owner, nil
}

// InboxStats describes the items waiting for their workflows: all of them, or a workspace's when workspaceID is
// not empty.
func (db *DB) InboxStats(ctx context.Context, workspaceID string) (linsync.InboxStats, error) {
	var st linsync.InboxStats
	var age *float64
	q := `SELECT count(*), min(received_at), extract(epoch FROM now() - min(received_at))::float8
		FROM inbox WHERE started_at IS NULL`
	args := []any{}
	if workspaceID != "" {
		q += ` AND workspace_id = $1`
		args = append(args, workspaceID)
	}
	if err := db.pool.QueryRow(ctx, q, args...).Scan(&st.Depth, &st.OldestReceivedAt, &age); err != nil {
		return st, fmt.Errorf("query inbox depth: %w", err)
	}
	if age != nil && *age > 0 {
		st.OldestAgeSeconds = *age
	}
	return st, nil
}

// PruneInbox deletes the records of started items whose keep time has passed, at most limit of them, and returns
// how many it deleted.
func (db *DB) PruneInbox(ctx context.Context, limit int) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM inbox WHERE id IN (
		SELECT id FROM inbox WHERE started_at IS NOT NULL AND keep_until < now() LIMIT $1)`, limit)
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
