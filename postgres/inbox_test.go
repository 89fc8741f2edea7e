package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linsynctest"
)

func deliveryItem(wsID, body string) *linsync.InboxItem {
	sum := sha256.Sum256([]byte(body))
	id := uuid.NewString()
	now := time.Now()
	return &linsync.InboxItem{WorkspaceID: wsID, Kind: linsync.InboxDelivery, Key: id, ContentHash: sum[:],
		WorkflowID: "linear-delivery:" + wsID + ":" + id, Input: []byte(`{"body":` + body + `}`),
		TraceContext: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ReceivedAt: now,
		KeepUntil: now.Add(8 * time.Hour)}
}

// TestInboxDedupByContentAndKey: a delivery is unique per workspace by its body and by its delivery id; another
// workspace may bring the same body.
func TestInboxDedupByContentAndKey(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	other, err := db.CreateWorkspace(ctx, "other", "Other")
	require.NoError(t, err)

	first := deliveryItem(ws.ID, `{"n":1}`)
	ok, err := db.PutInbox(ctx, first)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotZero(t, first.ID)

	repost := deliveryItem(ws.ID, `{"n":1}`) // the same body under a new Linear-Delivery
	ok, err = db.PutInbox(ctx, repost)
	require.NoError(t, err)
	require.False(t, ok, "a body seen before is a duplicate whatever its delivery id")

	sameID := deliveryItem(ws.ID, `{"n":2}`) // the same delivery, re-stamped
	sameID.Key = first.Key
	ok, err = db.PutInbox(ctx, sameID)
	require.NoError(t, err)
	require.False(t, ok, "a delivery id seen before is a duplicate")

	elsewhere := deliveryItem(other.ID, `{"n":1}`)
	elsewhere.Key = first.Key
	ok, err = db.PutInbox(ctx, elsewhere)
	require.NoError(t, err)
	require.True(t, ok, "dedup is per workspace: one tenant cannot claim another's delivery id or body")

	got, err := db.FindInboxItem(ctx, ws.ID, linsync.InboxDelivery, first.Key)
	require.NoError(t, err)
	require.Equal(t, first.Input, got.Input)
	require.Equal(t, first.TraceContext, got.TraceContext)
	require.Nil(t, got.StartedAt)

	st, err := db.InboxStats(ctx, ws.ID)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Depth)
	require.NotNil(t, st.OldestReceivedAt)
	all, err := db.InboxStats(ctx, "")
	require.NoError(t, err)
	require.EqualValues(t, 2, all.Depth)

	require.NoError(t, db.MarkInboxStarted(ctx, []int64{first.ID}))
	got, err = db.FindInboxItem(ctx, ws.ID, linsync.InboxDelivery, first.Key)
	require.NoError(t, err)
	require.NotNil(t, got.StartedAt)
	require.Empty(t, got.Input, "the body is dropped once the workflow started")
	ok, err = db.PutInbox(ctx, deliveryItem(ws.ID, `{"n":1}`))
	require.NoError(t, err)
	require.False(t, ok, "the content record outlives the start")
	st, err = db.InboxStats(ctx, ws.ID)
	require.NoError(t, err)
	require.Zero(t, st.Depth)
}

// TestInboxEventsSkipHandledKeys: an event key is a duplicate while it is in the inbox and, once its record is
// pruned, while its receipt says it was handled.
func TestInboxEventsSkipHandledKeys(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	now := time.Now()
	ev := func(key string) linsync.InboxItem {
		return linsync.InboxItem{WorkspaceID: ws.ID, Kind: linsync.InboxEvent, Key: key, WorkflowID: "event:" + key,
			Input: []byte(`{}`), ReceivedAt: now, KeepUntil: now.Add(time.Hour)}
	}
	_, err = db.ClaimEventReceipt(ctx, ws.ID, "handled", "link.broken", "event:handled", "run-1")
	require.NoError(t, err)
	require.NoError(t, db.CompleteEventReceipt(ctx, ws.ID, "handled"))
	_, err = db.ClaimEventReceipt(ctx, ws.ID, "unfinished", "link.broken", "event:unfinished", "run-1")
	require.NoError(t, err)

	put, err := db.PutInboxEvents(ctx, []linsync.InboxItem{ev("a"), ev("handled"), ev("unfinished")})
	require.NoError(t, err)
	require.Len(t, put, 2)
	require.Contains(t, put, "a")
	require.Contains(t, put, "unfinished", "a run that never completed does not make its key a duplicate")
	put, err = db.PutInboxEvents(ctx, []linsync.InboxItem{ev("a"), ev("b")})
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, keysOf(put))
}

func keysOf(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDrainInboxTwoDrainersNeverShareAnItem: drainers running at once each hold their own items (SKIP LOCKED),
// oldest first; every item is started exactly once, and a failed start waits before the next try.
func TestDrainInboxTwoDrainersNeverShareAnItem(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	const n = 300
	for i := range n {
		it := deliveryItem(ws.ID, fmt.Sprintf(`{"n":%d}`, i))
		it.ReceivedAt = time.Now().Add(-time.Minute)
		ok, err := db.PutInbox(ctx, it)
		require.NoError(t, err)
		require.True(t, ok)
	}
	var mu sync.Mutex
	tries := map[int64]int{}
	drain := func() error {
		for {
			claimed, err := db.DrainInbox(ctx, 7, func(_ context.Context, items []linsync.InboxItem) map[int64]error {
				out := map[int64]error{}
				for i, it := range items {
					if i > 0 {
						require.LessOrEqual(t, items[i-1].ID, it.ID, "oldest first")
					}
					mu.Lock()
					tries[it.ID]++
					mu.Unlock()
					time.Sleep(time.Millisecond) // hold the rows long enough for the drainers to overlap
					out[it.ID] = nil
				}
				return out
			})
			if err != nil || claimed == 0 {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = drain() })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Len(t, tries, n, "every item was started")
	for id, k := range tries {
		require.Equal(t, 1, k, "item %d was handed to a start more than once", id)
	}
	st, err := db.InboxStats(ctx, ws.ID)
	require.NoError(t, err)
	require.Zero(t, st.Depth)

	// A failed start is retried later, not at once; an item the start did not try is left as it was.
	failing := deliveryItem(ws.ID, `{"fail":true}`)
	untried := deliveryItem(ws.ID, `{"untried":true}`)
	for _, it := range []*linsync.InboxItem{failing, untried} {
		ok, err := db.PutInbox(ctx, it)
		require.NoError(t, err)
		require.True(t, ok)
	}
	claimed, err := db.DrainInbox(ctx, 10, func(_ context.Context, items []linsync.InboxItem) map[int64]error {
		return map[int64]error{failing.ID: errors.New("temporal: unavailable")}
	})
	require.NoError(t, err)
	require.Equal(t, 2, claimed)
	got, err := db.FindInboxItem(ctx, ws.ID, linsync.InboxDelivery, failing.Key)
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, "temporal: unavailable", got.LastError)
	require.True(t, got.DrainAfter.After(time.Now()), "the failed item waits")
	claimed, err = db.DrainInbox(ctx, 10, func(_ context.Context, items []linsync.InboxItem) map[int64]error {
		require.Len(t, items, 1)
		require.Equal(t, untried.ID, items[0].ID, "only the untried item is due")
		return map[int64]error{}
	})
	require.NoError(t, err)
	require.Equal(t, 1, claimed)
}

// TestClaimDeliveryContent: a delivery started without the inbox owns its body only when no other delivery
// brought it first.
func TestClaimDeliveryContent(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	keep := time.Now().Add(time.Hour)

	inboxed := deliveryItem(ws.ID, `{"n":1}`)
	ok, err := db.PutInbox(ctx, inboxed)
	require.NoError(t, err)
	require.True(t, ok)
	direct := uuid.NewString()
	owner, err := db.ClaimDeliveryContent(ctx, ws.ID, direct, inboxed.ContentHash, "wf", keep)
	require.NoError(t, err)
	require.Equal(t, inboxed.Key, owner, "the same body came first through the inbox")

	fresh := sha256.Sum256([]byte(`{"n":2}`))
	owner, err = db.ClaimDeliveryContent(ctx, ws.ID, direct, fresh[:], "wf", keep)
	require.NoError(t, err)
	require.Equal(t, direct, owner)
	owner, err = db.ClaimDeliveryContent(ctx, ws.ID, direct, fresh[:], "wf", keep)
	require.NoError(t, err)
	require.Equal(t, direct, owner, "claiming again is idempotent")
	ok, err = db.PutInbox(ctx, deliveryItem(ws.ID, `{"n":2}`))
	require.NoError(t, err)
	require.False(t, ok, "a later re-post of the claimed body is a duplicate")

	// Concurrent claims of one body: exactly one owner, whoever wins.
	body := sha256.Sum256([]byte(`{"n":3}`))
	ids := make([]string, 8)
	owners := make([]string, len(ids))
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = uuid.NewString()
		wg.Go(func() {
			o, err := db.ClaimDeliveryContent(ctx, ws.ID, ids[i], body[:], "wf", keep)
			if err == nil {
				owners[i] = o
			}
		})
	}
	wg.Wait()
	for _, o := range owners {
		require.Equal(t, owners[0], o, "every claimant sees the same owner")
	}
	require.Contains(t, ids, owners[0])
}

// TestPruneInbox keeps waiting items and records whose keep time has not passed.
func TestPruneInbox(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	put := func(body string, keep time.Duration, started bool) *linsync.InboxItem {
		it := deliveryItem(ws.ID, body)
		it.KeepUntil = time.Now().Add(keep)
		ok, err := db.PutInbox(ctx, it)
		require.NoError(t, err)
		require.True(t, ok)
		if started {
			require.NoError(t, db.MarkInboxStarted(ctx, []int64{it.ID}))
		}
		return it
	}
	expired := put(`{"n":1}`, -time.Minute, true)
	waiting := put(`{"n":2}`, -time.Minute, false)
	kept := put(`{"n":3}`, time.Hour, true)
	n, err := db.PruneInbox(ctx, 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	_, err = db.FindInboxItem(ctx, ws.ID, linsync.InboxDelivery, expired.Key)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))
	for _, it := range []*linsync.InboxItem{waiting, kept} {
		_, err = db.FindInboxItem(ctx, ws.ID, linsync.InboxDelivery, it.Key)
		require.NoError(t, err)
	}
	ok, err := db.PutInbox(ctx, deliveryItem(ws.ID, `{"n":1}`))
	require.NoError(t, err)
	require.True(t, ok, "past the horizon the body may come again (ingress refuses its timestamp by then)")
}

// TestPutInboxBatch: a group of items is written in one statement with the dedup of one at a time: against what
// is stored, and within the group, where the first of two items with the same body or delivery id wins.
func TestPutInboxBatch(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	stored := deliveryItem(ws.ID, `{"n":0}`)
	ok, err := db.PutInbox(ctx, stored)
	require.NoError(t, err)
	require.True(t, ok)

	fresh := deliveryItem(ws.ID, `{"n":1}`)
	sameBodyAsStored := deliveryItem(ws.ID, `{"n":0}`)
	second := deliveryItem(ws.ID, `{"n":2}`)
	sameBodyInGroup := deliveryItem(ws.ID, `{"n":2}`)
	sameIDInGroup := deliveryItem(ws.ID, `{"n":3}`)
	sameIDInGroup.Key = fresh.Key
	exactCopy := *second
	group := []*linsync.InboxItem{fresh, sameBodyAsStored, second, sameBodyInGroup, sameIDInGroup, &exactCopy}
	written, err := db.PutInboxBatch(ctx, group)
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, true, false, false, false}, written)
	require.NotZero(t, fresh.ID)
	require.NotZero(t, second.ID)
	require.NotEqual(t, fresh.ID, second.ID)
	require.Zero(t, exactCopy.ID)
	got, err := db.FindInboxItem(ctx, ws.ID, linsync.InboxDelivery, fresh.Key)
	require.NoError(t, err)
	require.Equal(t, fresh.ContentHash, got.ContentHash, "the first of two items with one delivery id is the one written")

	_, err = db.PutInboxBatch(ctx, []*linsync.InboxItem{{WorkspaceID: ws.ID, Kind: linsync.InboxQuestion, Key: "q"}})
	require.Error(t, err, "question hand-offs are written one at a time")
}
