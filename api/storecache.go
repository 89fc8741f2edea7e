package api

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/linsync/linsync"
)

// maxStale is how long a cached value keeps serving while Postgres cannot be read: long enough to ride out a
// restart, short enough that a secret rotated out just before an outage stops counting soon.
const maxStale = 10 * time.Minute

// loadTimeout bounds one shared read of the store: its callers wait on their own contexts, the read itself on this
// (Linear waits 5 s for an answer).
const loadTimeout = 5 * time.Second

// storeCache keeps what ingress reads from Postgres for every delivery (webhooks' secrets, organizations' team
// claims) for ttl. While Postgres cannot be read it serves the last value known for up to maxStale, so that a
// delivery can still be accepted by starting its workflow directly rather than refused. A not-found answer is passed
// on and not cached. Concurrent misses of one key share one read, so an entry expiring under a burst costs one
// Postgres query, not one per request in flight.
type storeCache[V any] struct {
	load func(ctx context.Context, key string) (V, error)
	ttl  time.Duration
	now  func() time.Time

	flight singleflight.Group

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

// get returns key's value, from the cache while it is younger than ttl; fresh reads it again regardless, without
// joining a read begun before it was asked for (a secret stored a moment ago must be seen).
func (c *storeCache[V]) get(ctx context.Context, key string, fresh bool) (V, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && !fresh && now.Sub(e.fetched) < c.ttl {
		return e.v, nil
	}
	v, err := c.read(ctx, key, now, fresh)
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
	return v, nil
}

// read loads key and caches it, unless a read begun later cached it first; concurrent reads of a key that are not
// fresh share one load, which runs on past a caller that gives up (the others still wait for it).
func (c *storeCache[V]) read(ctx context.Context, key string, now time.Time, fresh bool) (V, error) {
	load := func(ctx context.Context) (V, error) {
		v, err := c.load(ctx, key)
		if err == nil {
			c.mu.Lock()
			if e, ok := c.entries[key]; !ok || !e.fetched.After(now) {
				c.entries[key] = storeEntry[V]{v: v, fetched: now}
			}
			c.mu.Unlock()
		}
		return v, err
	}
	if fresh {
		return load(ctx)
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		return load(ctx)
	})
	select {
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, r.Err
	}
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
