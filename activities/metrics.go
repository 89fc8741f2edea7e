package activities

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the activities' operational counters. A nil *Metrics records nothing, so tests need not build one.
type Metrics struct {
	retries     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
}

// NewMetrics registers the activities' metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_linear_retries_total",
			Help: "Linear calls that failed and will be retried, by reason (rate_limited, transient).",
		}, []string{"reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_dead_letters_total",
			Help: "Runs that failed for good and became dead letters, by kind and error class.",
		}, []string{"kind", "error_class"}),
	}
	for _, c := range []prometheus.Collector{m.retries, m.deadLetters} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register activity metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) retry(reason string) {
	if m != nil {
		m.retries.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) deadLetter(kind, class string) {
	if m != nil {
		m.deadLetters.WithLabelValues(kind, class).Inc()
	}
}

// metrics is set once at start-up by SetMetrics; LinearError is a plain function, so it reads it from here.
var metrics *Metrics

// SetMetrics makes the activities report to m.
func SetMetrics(m *Metrics) { metrics = m }
