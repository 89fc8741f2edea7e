package api

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

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
