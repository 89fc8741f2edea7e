package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync/postgres"
)

// ops serves the endpoints every linsync process has on its operations listener (LINSYNC_OPS_ADDR): liveness,
// readiness and metrics. Metrics name workspaces and carry per-tenant rate-limit state, and readiness tells the state
// of Postgres and Temporal, so neither is on the public API listener; that one keeps only /healthz, a bare liveness
// answer, for load balancers that can check nothing but the port they send traffic to.
type ops struct {
	db       *postgres.DB
	temporal client.Client
	gatherer prometheus.Gatherer
}

func (o *ops) register(e *gin.Engine) {
	e.GET("/healthz", o.handleHealthz)
	e.GET("/readyz", o.handleReadyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.gatherer, promhttp.HandlerOpts{})))
}

// OpsHandler serves /healthz, /readyz and /metrics: the operations listener of every role.
func OpsHandler(db *postgres.DB, tc client.Client, gatherer prometheus.Gatherer) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	(&ops{db: db, temporal: tc, gatherer: gatherer}).register(e)
	return e
}

func (o *ops) handleHealthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// handleReadyz answers 200 while linsync can acknowledge work durably: Postgres takes it into the inbox, or, with
// Postgres away, Temporal takes it directly. A Temporal outage alone is not a reason to take an API out of a load
// balancer (Linear would get refusals instead of durable acks); it shows as "degraded", with the inbox's depth and
// the age of its oldest item, which then grow until Temporal is back. Only when neither answers is it 503.
func (o *ops) handleReadyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c, 2*time.Second)
	defer cancel()
	checks := gin.H{"postgres": "ok", "temporal": "ok", "status": "ready"}
	pgDown, temporalDown := false, false
	if st, err := o.db.InboxStats(ctx, ""); err != nil {
		checks["postgres"], pgDown = "unavailable", true
	} else {
		checks["inbox"] = st
	}
	if _, err := o.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], temporalDown = "unavailable", true
	}
	status := http.StatusOK
	switch {
	case pgDown && temporalDown:
		checks["status"], status = "not_ready", http.StatusServiceUnavailable
	case pgDown || temporalDown:
		checks["status"] = "degraded"
	}
	c.JSON(status, checks)
}
