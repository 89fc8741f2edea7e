package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// TestStoreCacheServesStaleOnlyThroughAnOutage: a value is read once per ttl; while the store fails, the last value
// known serves for up to maxStale and then the answer is unavailable; a not-found answer is passed on; drop reads
// again at once.
func TestStoreCacheServesStaleOnlyThroughAnOutage(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	reads, value := 0, "v1"
	var fail error
	c := newStoreCache(func(_ context.Context, key string) (string, error) {
		reads++
		if fail != nil {
			return "", fail
		}
		return value + ":" + key, nil
	}, time.Minute, func() time.Time { return now })
	get := func(fresh bool) (string, error) { return c.get(t.Context(), "k", fresh) }

	v, err := get(false)
	require.NoError(t, err)
	require.Equal(t, "v1:k", v)
	value = "v2"
	v, _ = get(false)
	require.Equal(t, "v1:k", v, "within ttl, from the cache")
	require.Equal(t, 1, reads)
	v, _ = get(true)
	require.Equal(t, "v2:k", v, "fresh reads again")

	fail = errors.New("connection refused")
	now = now.Add(2 * time.Minute)
	v, err = get(false)
	require.NoError(t, err)
	require.Equal(t, "v2:k", v, "the store is away: the last value known")
	now = now.Add(maxStale)
	_, err = get(false)
	require.Equal(t, linsync.EUNAVAILABLE, linsync.ErrorCode(err), "too old to serve")

	fail = linsync.Errorf(linsync.ENOTFOUND, "no such workspace")
	_, err = get(false)
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))

	fail, value = nil, "v3"
	c.drop("k")
	_, ok := c.age("k")
	require.False(t, ok)
	v, _ = get(false)
	require.Equal(t, "v3:k", v)
}

// TestStoreCacheSharesAMiss: requests that miss one key together cause one read, which a request giving up does not
// cut short for the others; a fresh read does not join a read begun before it.
func TestStoreCacheSharesAMiss(t *testing.T) {
	var reads atomic.Int32
	release := make(chan struct{})
	c := newStoreCache(func(ctx context.Context, key string) (string, error) {
		n := reads.Add(1)
		if n == 1 {
			select {
			case <-release:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		return fmt.Sprintf("%s#%d", key, n), nil
	}, time.Minute, time.Now)

	const callers = 32
	quitter, quit := context.WithCancel(t.Context())
	quitErr := make(chan error, 1)
	go func() { // the first caller starts the read, then gives up
		_, err := c.get(quitter, "k", false)
		quitErr <- err
	}()
	require.Eventually(t, func() bool { return reads.Load() == 1 }, 5*time.Second, time.Millisecond)
	results := make(chan string, callers)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers - 1 {
		wg.Go(func() {
			v, err := c.get(t.Context(), "k", false)
			results <- v
			errs <- err
		})
	}
	quit()
	require.Error(t, <-quitErr, "the caller that gave up")
	// The read goes on for the others.
	v, err := c.get(t.Context(), "k", true)
	require.NoError(t, err)
	require.Equal(t, "k#2", v, "a fresh read does not wait on the read in flight")
	close(release)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	n := 0
	for v := range results {
		// The shared read's value, or the fresh one for a caller that came after the fresh read had cached it.
		require.Contains(t, []string{"k#1", "k#2"}, v)
		n++
	}
	require.Equal(t, callers-1, n)
	require.Equal(t, int32(2), reads.Load(), "one shared read for the %d callers, one fresh", callers)
	v, err = c.get(t.Context(), "k", false)
	require.NoError(t, err)
	require.Equal(t, "k#2", v, "the shared read, begun earlier, does not replace the fresh value")
}
