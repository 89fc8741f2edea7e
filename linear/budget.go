package linear

import (
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/linsync/linsync"
)

// RateWindow is one rate-limit window Linear reports in response headers.
type RateWindow = linsync.RateWindow

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

// adopt takes what other processes noted about the credential: their refusal's reset, and a window that ran lower
// than this process knows (same reset or later), so every process paces by the least that is left.
func (b *budget) adopt(s linsync.SharedRateLimit, now time.Time) {
	b.block(s.BlockedUntil)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range s.Windows {
		if !w.Reset.After(now) {
			continue
		}
		mine, ok := b.windows[w.Kind]
		if ok && (w.Reset.Before(mine.Reset) || w.Remaining >= mine.Remaining) {
			continue
		}
		if b.windows == nil {
			b.windows = map[string]RateWindow{}
		}
		b.windows[w.Kind] = w
	}
}

// shared is what to tell other processes: the refusal's reset, and the windows running below slowBelow of their
// limit. It is empty while the budget is healthy, so nothing is shared then.
func (b *budget) shared(now time.Time, slowBelow float64) linsync.SharedRateLimit {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s linsync.SharedRateLimit
	if b.blockedUntil.After(now) {
		s.BlockedUntil = b.blockedUntil
	}
	for _, w := range b.windows {
		if w.Limit > 0 && w.Reset.After(now) && w.Remaining/w.Limit < slowBelow {
			s.Windows = append(s.Windows, w)
		}
	}
	sort.Slice(s.Windows, func(i, j int) bool { return s.Windows[i].Kind < s.Windows[j].Kind })
	return s
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
