package api

import (
	"context"
	"errors"
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
