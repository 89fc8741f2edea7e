package activities

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// ReconcileMetrics are reconciliation's counters. A nil *ReconcileMetrics records nothing, so tests need not build
// one.
type ReconcileMetrics struct {
	drift     *prometheus.CounterVec
	reenabled prometheus.Counter
}

// NewReconcileMetrics registers reconciliation's metrics with reg.
func NewReconcileMetrics(reg prometheus.Registerer) (*ReconcileMetrics, error) {
	m := &ReconcileMetrics{
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_drift_repaired_total",
			Help: "Changes webhooks missed that reconciliation applied, by kind (question, filed_issue, question_resync).",
		}, []string{"kind"}),
		reenabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linsync_webhooks_reenabled_total",
			Help: "linsync webhooks that Linear had disabled and reconciliation enabled again.",
		}),
	}
	for _, c := range []prometheus.Collector{m.drift, m.reenabled} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register reconcile metrics: %w", err)
		}
	}
	return m, nil
}

func (m *ReconcileMetrics) driftRepaired(kind string, n int) {
	if m != nil {
		m.drift.WithLabelValues(kind).Add(float64(n))
	}
}

func (m *ReconcileMetrics) webhookReenabled() {
	if m != nil {
		m.reenabled.Inc()
	}
}
