package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/postgres"
)

// Ingress acknowledges work only once it is durable. Verified work is written to the Postgres inbox first, in one
// statement that is also the dedup (postgres.PutInbox), and answered 200 at once: a Temporal start takes several
// times as long as the insert and Temporal may be slow or down, while Linear waits at most 5 s and a 503 is never
// safe (Linear's retries carry the first attempt's body). The inserted item then goes to the dispatcher below,
// which starts its workflow within milliseconds: the normal path. Whatever the dispatcher could not start (its
// queue full, Temporal slow or down, the process gone) the worker's drainer starts later, under the same workflow
// ID, so a start made twice is found taken and the work runs once. Only when Postgres does not take the item does
// the handler start the workflow itself (Temporal persisted it, so a 200 is still honest), and only when neither
// does is the answer 503.

// The drainer leaves a new item to the dispatcher of the API that wrote it for dispatchGrace, and longer when the
// dispatcher has a queue ahead of it (its expected wait, at most maxDispatchWait), so the two do not start the same
// items side by side. An item the dispatcher gives up on is handed to the drainer at once.
const (
	dispatchGrace   = 2 * time.Second
	maxDispatchWait = 30 * time.Second
	// markEvery is how often the dispatcher records the starts it made (marker).
	markEvery = 250 * time.Millisecond
)

// dispatcher starts the workflows of inbox items from the API process, right after their 200: a bounded queue
// served by a few goroutines, and a marker that records the starts in batches. It never blocks a request: an item
// that does not fit in the queue, or whose start fails, is left to the drainer.
type dispatcher struct {
	start   func(context.Context, linsync.InboxItem) (bool, error)
	mark    func(context.Context, []int64) error
	release func(context.Context, []int64) error
	workers int
	timeout time.Duration
	log     *slog.Logger
	counts  *prometheus.CounterVec

	queue    chan linsync.InboxItem
	marks    chan int64
	releases chan int64
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	mwg      sync.WaitGroup
	// perStart is a moving average of how long one start takes, in nanoseconds.
	perStart atomic.Int64
	// busy reports whether acknowledgements are being written right now in numbers (the group writer's requests in
	// flight); while it does, only busyWorkers of the workers start workflows. See work.
	busy func() bool
}

// busyWorkers is how many of the dispatcher's workers keep starting workflows while the ingress is busy: none. A
// start costs the Temporal server several times the CPU that an acknowledgement costs linsync and Postgres, and
// Linear waits on the acknowledgement, not on the start: during a burst the inbox is the buffer, and the workers
// resume within 10 ms of the burst thinning (a worker waiting on the queue when a burst begins still takes its
// item). Under a load that never thins, the drainer starts what waited past its dispatch wait (at most
// maxDispatchWait). With Temporal beside linsync on two cores, two workers starting through a burst cut the
// acknowledgement rate by about a third (make bench, phase 1).
const busyWorkers = 0

// busyIngress is how many acknowledgements waiting on their inbox write at once make the ingress busy, and
// busyHold how long it stays busy after that was last seen: between two group commits the count drops to nothing
// for a moment in the middle of a burst, and a pause that ended there let 2 % of a burst's deliveries be started
// during it (make bench, phase 1), each costing the Temporal server beside linsync several acknowledgements' CPU.
const (
	busyIngress = 4
	busyHold    = 100 * time.Millisecond
)

// Dispatcher results, the values of linsync_inbox_dispatch_total{result}.
const (
	dispatchStarted   = "started"
	dispatchDuplicate = "already_started"
	dispatchFailed    = "failed"
	dispatchQueueFull = "queue_full"
)

func newDispatcher(start func(context.Context, linsync.InboxItem) (bool, error), mark, release func(context.Context, []int64) error,
	workers, queue int, timeout time.Duration, log *slog.Logger, counts *prometheus.CounterVec, busy func() bool) *dispatcher {
	d := &dispatcher{start: start, mark: mark, release: release, workers: workers, timeout: timeout, log: log, counts: counts, busy: busy,
		queue: make(chan linsync.InboxItem, queue), marks: make(chan int64, queue), releases: make(chan int64, queue),
		stop: make(chan struct{})}
	d.perStart.Store(int64(20 * time.Millisecond))
	for i := range workers {
		d.wg.Go(func() { d.work(i) })
	}
	d.mwg.Go(d.marker)
	return d
}

// wait is how long an item written now (with n more behind it) may wait for the dispatcher: the grace, or the time
// its queue takes at the recent pace, whichever is longer, up to maxDispatchWait.
func (d *dispatcher) wait(n int) time.Duration {
	ahead := time.Duration(len(d.queue)+n) * time.Duration(d.perStart.Load()) / time.Duration(max(d.workers, 1))
	return min(max(dispatchGrace, ahead+dispatchGrace), maxDispatchWait)
}

// offer queues an item for its start; when the queue is full or the dispatcher stopped, the item is handed to the
// drainer.
func (d *dispatcher) offer(it linsync.InboxItem) bool {
	select {
	case <-d.stop:
		return false
	default:
	}
	select {
	case d.queue <- it:
		return true
	default:
		d.counts.WithLabelValues(dispatchQueueFull).Inc()
		d.giveUp(it.ID)
		return false
	}
}

// giveUp hands an item to the drainer now rather than after its dispatch wait.
func (d *dispatcher) giveUp(id int64) {
	select {
	case d.releases <- id:
	default: // the drainer gets it when its wait is over
	}
}

// work is one of the dispatcher's workers; worker i >= busyWorkers pauses while the ingress is busy, before taking
// an item and again before starting the one it took (a worker waiting on the queue when a burst begins is handed
// its first item in the middle of the burst). An item held when the dispatcher stops stays in the inbox for the
// drainer, as queued ones do.
func (d *dispatcher) work(i int) {
	var pause *time.Ticker
	quiet := func() bool {
		for i >= busyWorkers && d.busy != nil && d.busy() {
			if pause == nil {
				pause = time.NewTicker(10 * time.Millisecond)
			}
			select {
			case <-d.stop:
				return false
			case <-pause.C:
			}
		}
		return true
	}
	defer func() {
		if pause != nil {
			pause.Stop()
		}
	}()
	for {
		if !quiet() {
			return
		}
		select {
		case <-d.stop:
			return
		case it := <-d.queue:
			if !quiet() {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
			begin := time.Now()
			started, err := d.start(ctx, it)
			cancel()
			took := int64(time.Since(begin))
			d.perStart.Store((7*d.perStart.Load() + took) / 8)
			switch {
			case err != nil:
				d.counts.WithLabelValues(dispatchFailed).Inc()
				d.log.Debug("dispatch left to the drainer", "workflow_id", it.WorkflowID, "workspace_id", it.WorkspaceID, "err", err)
				d.giveUp(it.ID)
				continue
			case started:
				d.counts.WithLabelValues(dispatchStarted).Inc()
			default:
				d.counts.WithLabelValues(dispatchDuplicate).Inc()
			}
			select {
			case d.marks <- it.ID:
			default: // the drainer will find the start taken and mark it
			}
		}
	}
}

// marker records starts, and the items given up to the drainer, in batches: one UPDATE for up to 500 items, at
// least every markEvery while there are any. A mark only has to land before the drainer's grace is over (a start it
// repeats finds its ID taken), and each batch is a commit: with Temporal beside linsync, a batch every 20 ms
// instead of every 250 ms cost about 0.03 of the webhooks' start rate against bare starts (make bench, phase 2:
// 0.87–0.91 in four runs against 0.92–0.93 in two).
func (d *dispatcher) marker() {
	const most = 500
	var ids, gone []int64
	write := func(what string, f func(context.Context, []int64) error, ids []int64) []int64 {
		if len(ids) == 0 {
			return ids
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := f(ctx, ids); err != nil {
			d.log.Warn(what+" failed; the drainer will find them", "items", len(ids), "err", err)
		}
		cancel()
		return ids[:0]
	}
	flush := func() {
		ids = write("mark inbox items started", d.mark, ids)
		gone = write("hand inbox items to the drainer", d.release, gone)
	}
	tick := time.NewTicker(markEvery)
	defer tick.Stop()
	for {
		select {
		case id := <-d.marks:
			if ids = append(ids, id); len(ids) >= most {
				flush()
			}
		case id := <-d.releases:
			if gone = append(gone, id); len(gone) >= most {
				flush()
			}
		case <-tick.C:
			flush()
		case <-d.stop:
			d.wg.Wait()
			for {
				select {
				case id := <-d.marks:
					ids = append(ids, id)
				case id := <-d.releases:
					gone = append(gone, id)
				default:
					flush()
					return
				}
			}
		}
	}
}

// close stops the dispatcher: starts in flight finish and their marks are written; queued items stay in the inbox
// for the drainer.
func (d *dispatcher) close() {
	d.once.Do(func() { close(d.stop) })
	d.wg.Wait()
	d.mwg.Wait()
}

// putInbox writes an item within half the start budget, so that a slow Postgres still leaves time to start the
// workflow directly within Linear's 5 s. The item carries the request's trace context and is left to this API's
// dispatcher for its expected wait. Deliveries go through the group writer; question hand-offs are written alone.
func (s *Server) putInbox(ctx context.Context, it *linsync.InboxItem) (bool, error) {
	it.TraceContext = traceParent(ctx)
	it.DrainAfter = it.ReceivedAt.Add(s.dispatch.wait(1))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout/2)
	defer cancel()
	if it.Kind == linsync.InboxQuestion {
		return s.db.PutInbox(ctx, it)
	}
	return s.writer.put(ctx, it)
}

// groupWriter writes the inbox items of concurrent requests together: a few writers each take whatever requests
// wait (up to groupMax) and write them in one statement, so a burst costs one commit per group, not per request.
// Every request still gets its answer only once its own row is committed (or found a duplicate).
type groupWriter struct {
	write func(context.Context, []*linsync.InboxItem) ([]bool, error)
	// inflight counts the requests waiting on their write; busyAt is when, in Unix nanoseconds, it last reached
	// busyIngress (the dispatcher's measure of a busy ingress).
	inflight atomic.Int64
	busyAt   atomic.Int64
	reqs     chan *groupReq
	stop     chan struct{}
	wg       sync.WaitGroup
}

type groupReq struct {
	ctx  context.Context
	it   *linsync.InboxItem
	done chan groupRes
}

type groupRes struct {
	written bool
	err     error
}

const groupMax = 256

func newGroupWriter(write func(context.Context, []*linsync.InboxItem) ([]bool, error), writers int) *groupWriter {
	g := &groupWriter{write: write, reqs: make(chan *groupReq, groupMax*writers), stop: make(chan struct{})}
	for range writers {
		g.wg.Go(g.run)
	}
	return g
}

// busy reports whether at least busyIngress requests waited on their writes at once within the last busyHold.
func (g *groupWriter) busy() bool {
	at := g.busyAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < busyHold
}

// put writes one item with the next group and reports whether it was written (false: a duplicate).
func (g *groupWriter) put(ctx context.Context, it *linsync.InboxItem) (bool, error) {
	if g.inflight.Add(1) >= busyIngress {
		g.busyAt.Store(time.Now().UnixNano())
	}
	defer g.inflight.Add(-1)
	r := &groupReq{ctx: ctx, it: it, done: make(chan groupRes, 1)}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-g.stop:
		return false, errors.New("inbox writer stopped")
	}
	select {
	case res := <-r.done:
		return res.written, res.err
	case <-ctx.Done():
		// The group may still commit the item: a direct start then claims content this delivery owns already,
		// under the same workflow ID.
		return false, ctx.Err()
	}
}

func (g *groupWriter) run() {
	for {
		var first *groupReq
		select {
		case <-g.stop:
			return
		case first = <-g.reqs:
		}
		group := []*groupReq{first}
	collect:
		for len(group) < groupMax {
			select {
			case r := <-g.reqs:
				group = append(group, r)
			default:
				break collect
			}
		}
		// The group's deadline is its most patient request's: nobody is kept longer than they agreed to wait.
		deadline, _ := first.ctx.Deadline()
		items := make([]*linsync.InboxItem, 0, len(group))
		live := group[:0]
		for _, r := range group {
			if r.ctx.Err() != nil {
				r.done <- groupRes{err: r.ctx.Err()}
				continue
			}
			if d, ok := r.ctx.Deadline(); ok && d.After(deadline) {
				deadline = d
			}
			items = append(items, r.it)
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		written, err := g.write(ctx, items)
		cancel()
		for i, r := range live {
			if err != nil {
				r.done <- groupRes{err: err}
			} else {
				r.done <- groupRes{written: written[i]}
			}
		}
	}
}

func (g *groupWriter) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
}

// traceParent is the W3C traceparent of the request's span, so a workflow started later from the inbox continues
// the request's trace. Without a tracer on the request, the caller's own traceparent header is kept.
func traceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	if tp := carrier["traceparent"]; tp != "" {
		return tp
	}
	if c, ok := ctx.(*gin.Context); ok && c.Request != nil {
		remote := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(c.Request.Header))
		propagation.TraceContext{}.Inject(remote, carrier)
	}
	return carrier["traceparent"]
}

// keepUntil is how long a delivery's content record must live: as long as its signed timestamp could still be
// accepted, and the clock tolerance more for API instances whose clocks differ.
func (s *Server) keepUntil(received, signed time.Time) time.Time {
	t := signed
	if t.IsZero() || t.Before(received.Add(-s.cfg.RetryHorizon)) {
		t = received
	}
	return t.Add(s.cfg.RetryHorizon + s.cfg.WebhookTolerance)
}

// InboxCollector reports the inbox's depth and the age of its oldest waiting item as Prometheus gauges, read from
// Postgres at each scrape. A process registers it once (cmd/linsync does).
func InboxCollector(db *postgres.DB) prometheus.Collector { return &inboxCollector{db: db} }

type inboxCollector struct{ db *postgres.DB }

var (
	inboxDepthDesc = prometheus.NewDesc("linsync_inbox_depth",
		"Inbox items (deliveries, events, question changes) acknowledged whose workflows have not started yet.", nil, nil)
	inboxAgeDesc = prometheus.NewDesc("linsync_inbox_oldest_age_seconds",
		"Age of the oldest inbox item whose workflow has not started (0 when none waits).", nil, nil)
)

func (ic *inboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inboxDepthDesc
	ch <- inboxAgeDesc
}

func (ic *inboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := ic.db.InboxStats(ctx, "")
	if err != nil {
		// Postgres is away: no reading rather than a false zero.
		return
	}
	ch <- prometheus.MustNewConstMetric(inboxDepthDesc, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(inboxAgeDesc, prometheus.GaugeValue, st.OldestAgeSeconds)
}
