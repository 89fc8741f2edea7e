package main

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync/linsynctest"
)

// TestTemporalSDKMetricsReachPrometheus: the Temporal client's own metrics (requests, latencies) show up, with
// their counts, in the registry /metrics serves.
func TestTemporalSDKMetricsReachPrometheus(t *testing.T) {
	_, hostPort := linsynctest.Temporal(t)
	reg := prometheus.NewRegistry()
	c, err := client.Dial(client.Options{HostPort: hostPort, MetricsHandler: temporalMetrics(reg), Logger: linsynctest.QuietLogger()})
	require.NoError(t, err)
	defer c.Close()
	for range 3 {
		_, err := c.CheckHealth(context.Background(), &client.CheckHealthRequest{})
		require.NoError(t, err)
		_, err = c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: "metrics-test"}, "NoSuchWorkflow")
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != "temporal_request_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetValue() > 0 {
					return true
				}
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "temporal_request_total counts the client's requests")
}
