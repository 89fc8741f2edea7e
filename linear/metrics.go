package linear

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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
