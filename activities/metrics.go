package activities

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
)

// Metrics are the activities' operational counters, shared by every activity struct that counts. A nil *Metrics
// records nothing, so tests need not build one.
type Metrics struct {
	retries     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	drift       *prometheus.CounterVec
	reenabled   prometheus.Counter
	gateway     *prometheus.CounterVec
	// ingestRetries counts the retries of the activities that record what linsync acknowledged, which retry until
	// they succeed: a rising count is an outage linsync is riding out, not a loss.
	ingestRetries *prometheus.CounterVec
	// notifySent and notifyFailed count notification messages by target kind and rule id.
	notifySent, notifyFailed *prometheus.CounterVec
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
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_drift_repaired_total",
			Help: "Changes webhooks missed that reconciliation applied, by kind (question, filed_issue, question_resync).",
		}, []string{"kind"}),
		reenabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linsync_webhooks_reenabled_total",
			Help: "linsync webhooks that Linear had disabled and reconciliation enabled again.",
		}),
		gateway: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_gateway_held_requests_total",
			Help: "Agents' requests held for approval, by how they ended (forwarded, outcome_unknown, failed, expired).",
		}, []string{"outcome"}),
		ingestRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_ingest_retries_total",
			Help: "Retries of the ingestion-path activities (ClaimContent, RecordDelivery, RecordDeadLetter), which retry until Postgres takes them.",
		}, []string{"activity"}),
		notifySent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_notifications_sent_total",
			Help: "Notification messages a target accepted, by target kind (slack, webhook) and rule id.",
		}, []string{"kind", "rule"}),
		notifyFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_notifications_failed_total",
			Help: "Notification messages given up on (refused, or out of retries), by target kind and rule id.",
		}, []string{"kind", "rule"}),
	}
	for _, c := range []prometheus.Collector{m.retries, m.deadLetters, m.drift, m.reenabled, m.gateway, m.ingestRetries,
		m.notifySent, m.notifyFailed} {
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

func (m *Metrics) driftRepaired(kind string, n int) {
	if m != nil {
		m.drift.WithLabelValues(kind).Add(float64(n))
	}
}

func (m *Metrics) webhookReenabled() {
	if m != nil {
		m.reenabled.Inc()
	}
}

func (m *Metrics) gatewayForward(outcome string) {
	if m != nil && outcome != "approved" {
		m.gateway.WithLabelValues(outcome).Inc()
	}
}

// ingestAttempt counts a retry of an ingestion-path activity: every attempt after the first.
func (m *Metrics) ingestAttempt(ctx context.Context, name string) {
	if m != nil && activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1 {
		m.ingestRetries.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) notification(kind, rule string, sent bool) {
	switch {
	case m == nil:
	case sent:
		m.notifySent.WithLabelValues(kind, rule).Inc()
	default:
		m.notifyFailed.WithLabelValues(kind, rule).Inc()
	}
}
