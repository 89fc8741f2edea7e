package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	webhooks      *prometheus.CounterVec
	startDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_webhook_requests_total",
			Help: "Linear webhook requests by outcome (accepted, duplicate, unauthorized, expired, too_large, ...).",
		}, []string{"outcome"}),
		startDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linsync_workflow_start_seconds",
			Help:    "Time to start (or find) a workflow from an HTTP request, by result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5},
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.webhooks, m.startDuration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}
