package linear

import (
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// Metrics are the Prometheus metrics of every Client sharing them, labelled by credential name.
type Metrics struct {
	requests  *prometheus.CounterVec
	remaining *prometheus.GaugeVec
	limit     *prometheus.GaugeVec
	reset     *prometheus.GaugeVec
	paused    *prometheus.CounterVec
	cache     *prometheus.CounterVec
}

// NewMetrics creates the Linear client metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_linear_requests_total",
			Help: "Linear GraphQL requests by credential, operation and outcome (ok or error class).",
		}, []string{"credential", "operation", "outcome"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linsync_linear_ratelimit_remaining",
			Help: "Rate-limit quota left in the current window, as last reported by Linear.",
		}, []string{"credential", "window"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linsync_linear_ratelimit_limit",
			Help: "Rate-limit quota of the window, as last reported by Linear.",
		}, []string{"credential", "window"}),
		reset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linsync_linear_ratelimit_reset_timestamp_seconds",
			Help: "When the rate-limit window resets, Unix seconds.",
		}, []string{"credential", "window"}),
		paused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_linear_ratelimit_paused_seconds_total",
			Help: "Time requests waited for the rate budget before being sent.",
		}, []string{"credential"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_linear_cache_lookups_total",
			Help: "Cached Linear look-ups by cache and result (hit or miss).",
		}, []string{"credential", "cache", "result"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.remaining, m.limit, m.reset, m.paused, m.cache} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observeRequest(cred, op, outcome string) {
	if m != nil {
		m.requests.WithLabelValues(cred, op, outcome).Inc()
	}
}

func (m *Metrics) observeBudget(cred string, ws []RateWindow) {
	if m == nil {
		return
	}
	for _, w := range ws {
		m.remaining.WithLabelValues(cred, w.Kind).Set(w.Remaining)
		m.limit.WithLabelValues(cred, w.Kind).Set(w.Limit)
		m.reset.WithLabelValues(cred, w.Kind).Set(float64(w.Reset.UnixMilli()) / 1000)
	}
}

func (m *Metrics) observePause(cred string, d time.Duration) {
	if m != nil {
		m.paused.WithLabelValues(cred).Add(d.Seconds())
	}
}

func (m *Metrics) observeCache(cred, cache string, hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cache.WithLabelValues(cred, cache, result).Inc()
}
