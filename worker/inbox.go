package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/workflows"
)

// Drainer starts the workflows of inbox items that the API's dispatcher did not start: its queue was full,
// Temporal was slow or down, or the API process died between the 200 and the start. It takes the oldest items
// first, under their own workflow IDs, so an item the dispatcher did start is found taken and only marked. Every
// worker runs one; they share the inbox safely, since each batch is claimed with FOR UPDATE SKIP LOCKED. It also
// prunes the content records Linear's retry horizon no longer needs.
type Drainer struct {
	DB *postgres.DB
	// Start hands an item to its workflow (workflows.Starter.StartInbox); started is false when the workflow was
	// started already.
	Start func(ctx context.Context, it linsync.InboxItem) (started bool, err error)
	Log   *slog.Logger
	// Batch is how many items one transaction claims (default 100); Concurrency how many of them start at once
	// (default 8); StartTimeout bounds each start (default 5 s).
	Batch        int
	Concurrency  int
	StartTimeout time.Duration
	// Interval is the pause after a pass that found nothing more to do (default 1 s); PruneEvery how often
	// expired records are deleted (default 1 min).
	Interval   time.Duration
	PruneEvery time.Duration
	counts     *prometheus.CounterVec
}

// Drainer results, the values of linsync_inbox_drained_total{result}.
const (
	drainStarted  = "started"
	drainTaken    = "already_started"
	drainFailed   = "failed"
	drainDeferred = "deferred"
)

// NewDrainer returns the drainer of d's inbox, starting workflows with d's settings and counting its work in
// d.Metrics (when set).
func NewDrainer(d Deps, log *slog.Logger) (*Drainer, error) {
	dr := &Drainer{DB: d.DB, Start: d.Starter().StartInbox, Log: log}
	dr.counts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "linsync_inbox_drained_total",
		Help: "Inbox items the worker's drainer handled, by result (started, already_started by the API's dispatcher, failed and retried later, deferred while Temporal is away).",
	}, []string{"result"})
	if d.Metrics != nil {
		if err := d.Metrics.Register(dr.counts); err != nil {
			return nil, fmt.Errorf("register drainer metrics: %w", err)
		}
	}
	return dr, nil
}

func (d *Drainer) defaults() {
	if d.Batch <= 0 {
		d.Batch = 100
	}
	if d.Concurrency <= 0 {
		d.Concurrency = 8
	}
	if d.StartTimeout <= 0 {
		d.StartTimeout = 5 * time.Second
	}
	if d.Interval <= 0 {
		d.Interval = time.Second
	}
	if d.PruneEvery <= 0 {
		d.PruneEvery = time.Minute
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.counts == nil {
		d.counts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "linsync_inbox_drained_total"}, []string{"result"})
	}
}

// Run drains until ctx ends: a full batch is followed at once by the next, anything less by a pause.
func (d *Drainer) Run(ctx context.Context) error {
	d.defaults()
	lastPrune := time.Time{}
	for {
		n, err := d.DrainOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("drain inbox failed", "err", err)
		}
		if time.Since(lastPrune) >= d.PruneEvery {
			lastPrune = time.Now()
			d.prune(ctx)
		}
		if err == nil && n >= d.Batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.Interval):
		}
	}
}

// DrainOnce claims one batch and starts its workflows; it returns how many items it claimed. When Temporal turns
// out to be away, the rest of the batch is left as it is (no attempt counted against the items) for the next pass.
func (d *Drainer) DrainOnce(ctx context.Context) (int, error) {
	d.defaults()
	return d.DB.DrainInbox(ctx, d.Batch, func(ctx context.Context, items []linsync.InboxItem) map[int64]error {
		var mu sync.Mutex
		out := make(map[int64]error, len(items))
		away := false
		sem := make(chan struct{}, d.Concurrency)
		var wg sync.WaitGroup
		for _, it := range items {
			mu.Lock()
			stop := away
			mu.Unlock()
			if stop || ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				sctx, cancel := context.WithTimeout(ctx, d.StartTimeout)
				started, err := d.Start(sctx, it)
				cancel()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && started:
					d.counts.WithLabelValues(drainStarted).Inc()
					out[it.ID] = nil
				case err == nil:
					d.counts.WithLabelValues(drainTaken).Inc()
					out[it.ID] = nil
				case temporalAway(err):
					// Not the item's fault: it is tried again on the next pass, as it is.
					d.counts.WithLabelValues(drainDeferred).Inc()
					away = true
				default:
					d.counts.WithLabelValues(drainFailed).Inc()
					d.Log.Warn("start inbox item failed", "workflow_id", it.WorkflowID, "workspace_id", it.WorkspaceID,
						"attempts", it.Attempts+1, "err", err)
					out[it.ID] = err
				}
			})
		}
		wg.Wait()
		return out
	})
}

// temporalAway reports whether a start failed because Temporal did not answer, rather than because of the item.
func temporalAway(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &app) && app.Type() == workflows.ErrTypeBadInboxItem:
		return false
	case errors.As(err, &unavailable), errors.As(err, &deadline), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return true
	}
	return false
}

// prune deletes the records of started items past their keep time, a bounded number per pass.
func (d *Drainer) prune(ctx context.Context) {
	for range 10 {
		n, err := d.DB.PruneInbox(ctx, 5000)
		if err != nil {
			if ctx.Err() == nil {
				d.Log.Warn("prune inbox failed", "err", err)
			}
			return
		}
		if n < 5000 {
			return
		}
	}
}
