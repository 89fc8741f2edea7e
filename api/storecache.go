package api

import (
	"context"
	"sync"
	"time"

	"github.com/linsync/linsync"
)

// maxStale is how long a cached value keeps serving while Postgres cannot be read: long enough to ride out a
// restart, short enough that a secret rotated out just before an outage stops counting soon.
const maxStale = 10 * time.Minute

// storeCache keeps what ingress reads from Postgres for every delivery (webhooks' secrets, organizations' team
// claims) for ttl. While Postgres cannot be read it serves the last value known for up to maxStale, so that a
// delivery can still be accepted by starting its workflow directly rather than refused. A not-found answer is passed
// on and not cached.
type storeCache[V any] struct {
	load func(ctx context.Context, key string) (V, error)
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]storeEntry[V]
}

type storeEntry[V any] struct {
	v       V
	fetched time.Time
}

func newStoreCache[V any](load func(ctx context.Context, key string) (V, error), ttl time.Duration, now func() time.Time) *storeCache[V] {
	return &storeCache[V]{load: load, ttl: ttl, now: now, entries: map[string]storeEntry[V]{}}
}

// get returns key's value, from the cache while it is younger than ttl; fresh reads it again regardless.
func (c *storeCache[V]) get(ctx context.Context, key string, fresh bool) (V, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && !fresh && now.Sub(e.fetched) < c.ttl {
		return e.v, nil
	}
	v, err := c.load(ctx, key)
	if err != nil {
		var zero V
		if linsync.ErrorCode(err) == linsync.ENOTFOUND {
			return zero, err
		}
		if ok && now.Sub(e.fetched) < maxStale {
			return e.v, nil
		}
		return zero, linsync.Errorf(linsync.EUNAVAILABLE, "workspace store unavailable; retry later")
	}
	c.mu.Lock()
	c.entries[key] = storeEntry[V]{v: v, fetched: now}
	c.mu.Unlock()
	return v, nil
}

// age reports how long ago key's cached value was read, and whether there is one.
func (c *storeCache[V]) age(key string) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	return c.now().Sub(e.fetched), ok
}

// drop forgets key's value, so that this process reads it again at once.
func (c *storeCache[V]) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// dropAll forgets every value.
func (c *storeCache[V]) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
