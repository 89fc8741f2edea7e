package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	webhooks      *prometheus.CounterVec
	startDuration *prometheus.HistogramVec
	// The agent gateway's calls by action, risk and decision, and the time linsync adds to a forwarded call.
	gatewayRequests *prometheus.CounterVec
	gatewayOverhead prometheus.Histogram
	dispatched      *prometheus.CounterVec
	// What checking webhook signatures costs: HMACs computed and webhook secrets decrypted, so that a test (and an
	// operator) can see that one delivery costs one of each, not one per stored webhook.
	webhookHMACs         prometheus.Counter
	webhookSecretsOpened prometheus.Counter
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
		gatewayRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_gateway_requests_total",
			Help: "Agents' GraphQL calls through the gateway, by classified action, risk and decision (allowed, denied, approval_required, refused, ...).",
		}, []string{"action", "risk", "decision"}),
		gatewayOverhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linsync_gateway_overhead_seconds",
			Help:    "Time linsync adds to a forwarded agent call (authentication, parsing, classification, policy, audit), Linear's own time excluded.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25},
		}),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linsync_inbox_dispatch_total",
			Help: "Inbox items the API's dispatcher handed to their workflows right after the 200, by result (started, already_started, failed and queue_full leave the item to the drainer).",
		}, []string{"result"}),
		webhookHMACs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linsync_webhook_hmacs_total",
			Help: "HMAC-SHA256 signatures computed to verify Linear webhook deliveries (one per secret checked).",
		}),
		webhookSecretsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linsync_webhook_secrets_opened_total",
			Help: "Webhook signing secrets decrypted for ingress (then kept in memory for a short while).",
		}),
	}
	for _, c := range []prometheus.Collector{m.webhooks, m.startDuration, m.gatewayRequests, m.gatewayOverhead, m.dispatched,
		m.webhookHMACs, m.webhookSecretsOpened} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}
