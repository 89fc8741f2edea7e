package linear

import (
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// RateWindow is one rate-limit window Linear reports in response headers.
type RateWindow struct {
	// Kind is "requests", "complexity" or "endpoint".
	Kind      string
	Limit     float64
	Remaining float64
	Reset     time.Time
}

// budget tracks one credential's rate-limit windows from response headers.
type budget struct {
	mu           sync.Mutex
	windows      map[string]RateWindow
	blockedUntil time.Time
	// Agents' requests being forwarded now, and their complexity: counted against the agents' share (forward.go).
	agentsInFlight          int
	agentComplexityInFlight float64
}

var budgetHeaders = []struct{ kind, limit, remaining, reset string }{
	{"requests", HeaderRequestsLimit, HeaderRequestsRemaining, HeaderRequestsReset},
	{"complexity", HeaderComplexityLimit, HeaderComplexityRemaining, HeaderComplexityReset},
	{"endpoint", HeaderEndpointRequestsLimit, HeaderEndpointRequestsRemaining, HeaderEndpointRequestsReset},
}

func (b *budget) update(h http.Header, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bh := range budgetHeaders {
		limit, err1 := strconv.ParseFloat(h.Get(bh.limit), 64)
		remaining, err2 := strconv.ParseFloat(h.Get(bh.remaining), 64)
		reset, ok := epochMillis(h.Get(bh.reset))
		if err1 != nil || err2 != nil || !ok {
			continue
		}
		if b.windows == nil {
			b.windows = map[string]RateWindow{}
		}
		b.windows[bh.kind] = RateWindow{Kind: bh.kind, Limit: limit, Remaining: remaining, Reset: reset}
	}
}

// block refuses requests until t, after Linear said we are rate limited.
func (b *budget) block(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.After(b.blockedUntil) {
		b.blockedUntil = t
	}
}

// delay is how long to wait before the next request: until a block or an exhausted window ends, or, when a window
// runs below slowBelow of its limit, the pace that spreads what is left evenly until its reset.
func (b *budget) delay(now time.Time, slowBelow float64) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.blockedUntil.Sub(now)
	for _, w := range b.windows {
		left := w.Reset.Sub(now)
		if left <= 0 || w.Limit <= 0 {
			continue
		}
		switch {
		case w.Remaining <= 0:
			d = max(d, left)
		case w.Remaining/w.Limit < slowBelow:
			d = max(d, time.Duration(float64(left)/w.Remaining))
		}
	}
	return max(d, 0)
}

func (b *budget) snapshot() []RateWindow {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]RateWindow, 0, len(b.windows))
	for _, w := range b.windows {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
