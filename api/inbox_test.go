package api

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// TestGroupWriterAnswersEachRequestItsOwnResult: concurrent puts are written together, and each caller gets the
// result of its own item; a caller that gives up gets its deadline, the others are not held by it.
func TestGroupWriterAnswersEachRequestItsOwnResult(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var groups []int
	release := make(chan struct{})
	write := func(_ context.Context, items []*linsync.InboxItem) ([]bool, error) {
		<-release // hold the first group so the others queue up behind it
		mu.Lock()
		groups = append(groups, len(items))
		mu.Unlock()
		out := make([]bool, len(items))
		for i, it := range items {
			n, _ := strconv.Atoi(it.Key)
			out[i] = n%2 == 0
			if n == 13 {
				return nil, errors.New("postgres: connection refused")
			}
		}
		return out, nil
	}
	g := newGroupWriter(write, 1)
	defer g.close()
	const n = 40
	got := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got[i], errs[i] = g.put(ctx, &linsync.InboxItem{Key: strconv.Itoa(i)})
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	failedGroup := -1
	for i := range n {
		if errs[i] != nil {
			failedGroup = i
			continue
		}
		require.Equal(t, i%2 == 0, got[i], "item %d", i)
	}
	require.NotEqual(t, -1, failedGroup, "item 13's group failed, and its callers were told")
	require.Error(t, errs[13])
	require.Less(t, len(groups), n, "requests were written in groups: %v", groups)

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	blocked := newGroupWriter(func(ctx context.Context, _ []*linsync.InboxItem) ([]bool, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, 1)
	defer blocked.close()
	_, err := blocked.put(ctx, &linsync.InboxItem{Key: "x"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// While the ingress is busy only busyWorkers start workflows at once; the rest join in when it is not.
func TestDispatcherYieldsToABusyIngress(t *testing.T) {
	// The ingress is quiet when the dispatcher starts, so its workers wait on the queue; the burst begins before
	// the items come, so each worker is handed its item in the middle of the burst.
	var busy atomic.Bool
	var running, most atomic.Int64
	release := make(chan struct{})
	start := func(ctx context.Context, it linsync.InboxItem) (bool, error) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
		return true, nil
	}
	noop := func(context.Context, []int64) error { return nil }
	counts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t"}, []string{"result"})
	d := newDispatcher(start, noop, noop, 8, 64, time.Second, slog.New(slog.DiscardHandler), counts, busy.Load)
	defer d.close()
	defer close(release) // before close, which waits for the starts in flight
	// The workers wait on the queue now.
	time.Sleep(20 * time.Millisecond)
	busy.Store(true)
	for i := range 8 {
		d.offer(linsync.InboxItem{ID: int64(i + 1)})
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < busyWorkers && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the other workers had time to take items, had they not yielded
	if got := most.Load(); got != busyWorkers {
		t.Fatalf("%d starts ran at once while the ingress was busy, want %d", got, busyWorkers)
	}
	busy.Store(false)
	for running.Load() < 8 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := running.Load(); got != 8 {
		t.Fatalf("%d starts ran at once after the burst, want all 8 workers", got)
	}
}

// TestGroupWriterStaysBusyBetweenCommits: the ingress counts as busy while enough requests wait on their writes, and
// for busyHold after, so that the moment between two group commits of a burst does not end the dispatcher's pause.
func TestGroupWriterStaysBusyBetweenCommits(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := newGroupWriter(func(ctx context.Context, items []*linsync.InboxItem) ([]bool, error) {
		<-release
		return make([]bool, len(items)), nil
	}, 1)
	defer g.close()
	require.False(t, g.busy(), "no request yet")
	var wg sync.WaitGroup
	for range busyIngress {
		wg.Go(func() { _, _ = g.put(t.Context(), &linsync.InboxItem{}) })
	}
	require.Eventually(t, g.busy, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.Zero(t, g.inflight.Load(), "every request answered")
	if time.Since(time.Unix(0, g.busyAt.Load())) < busyHold/2 { // not when this machine stalled the test that long
		require.True(t, g.busy(), "busy a moment after the last group, as between two commits of a burst")
	}
	require.Eventually(t, func() bool { return !g.busy() }, 5*time.Second, 5*time.Millisecond, "quiet after busyHold")
}
