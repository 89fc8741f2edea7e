//go:build !nodev

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/worker"
)

// benchOptions are bench ingest's flags.
type benchOptions struct {
	n, conc           int
	acks              int
	burst, burstConc  int
	outage            time.Duration
	outageRate        float64
	peerDir, cli      string
	skipPeer, quick   bool
	dispatchWorkers   int
	inboxWriters      int
	processedDeadline time.Duration
	cpuProfile        string
	sharedPostgres    bool
}

// benchCmd measures ingest in one run, on one Temporal dev server and one Postgres:
//
//  1. durable acks: signed webhooks from 16 concurrent senders to linsync's webhook ack (every 200 persisted in the
//     inbox) and, from the same load generator, to the non-durable Express peer; their ratio;
//  2. the bare Temporal start rate, and the rate at which webhooks are started as workflows (acked, then started
//     by the dispatcher) when Temporal keeps up; their ratio; and the ack latency at half the bare rate;
//  3. a burst of 10,000 webhooks at concurrency 64: ack latency, answers other than 200, and every one processed
//     (counted in webhook_deliveries);
//  4. Temporal stopped for 60 s under steady load: answers other than 200, and every one processed once it is back.
func benchCmd(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "host":
		return benchHost(ctx, cfg, args[1:], stdout)
	case len(args) > 0 && args[0] == "gateway":
		return benchGateway(ctx, cfg, args[1:], stdout)
	case len(args) > 0 && args[0] == "notify":
		return benchNotify(ctx, cfg, args[1:], stdout)
	case len(args) == 0 || args[0] != "ingest":
		return fmt.Errorf("usage: linsync bench ingest [-n N] [-c CONCURRENCY] [-acks N] [-burst N] [-outage D] [-quick] | bench host [-n LINKS] | bench gateway [-n N] | bench notify [-rate R] [-d D]")
	}
	var o benchOptions
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1500, "starts per phase of the start-rate comparison")
	fs.IntVar(&o.conc, "c", 16, "concurrent senders in the closed-loop phases")
	fs.IntVar(&o.acks, "acks", 8000, "webhooks per ack measurement (linsync and the peer, each twice)")
	fs.IntVar(&o.burst, "burst", 10000, "webhooks in the burst")
	fs.IntVar(&o.burstConc, "burst-c", 64, "concurrent senders in the burst")
	fs.DurationVar(&o.outage, "outage", 60*time.Second, "how long Temporal is stopped under load (0 skips the phase)")
	fs.Float64Var(&o.outageRate, "outage-rate", 50, "webhooks per second sent through the outage phase")
	fs.StringVar(&o.peerDir, "peer", "bench/peer-express", "the Express peer's directory (npm ci, then node server.js)")
	fs.BoolVar(&o.skipPeer, "skip-peer", false, "do not run the Express peer")
	fs.StringVar(&o.cli, "temporal-cli", ".cache/bin/temporal", "the Temporal CLI binary")
	fs.IntVar(&o.dispatchWorkers, "dispatch-workers", 0, "the API's dispatcher goroutines (0: its default)")
	fs.IntVar(&o.inboxWriters, "inbox-writers", 0, "the API's concurrent inbox writes (0: its default)")
	fs.DurationVar(&o.processedDeadline, "processed-within", 10*time.Minute, "how long to wait for every webhook of a phase to be processed")
	fs.BoolVar(&o.quick, "quick", false, "small numbers throughout, to try the bench itself")
	fs.BoolVar(&o.sharedPostgres, "shared-postgres", false,
		"use the server of DATABASE_URL instead of a private Postgres started for the run (initdb in a temporary directory)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the durable-ack phase to this file")
	phases := fs.String("phases", "acks,start,burst,outage", "the phases to run, of acks, start, burst and outage")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if o.quick {
		o.n, o.acks, o.burst, o.outage = 300, 1000, 1000, 10*time.Second
	}
	o.cpuProfile = *cpuProfile

	b, err := newBench(ctx, cfg, o, stdout)
	if err != nil {
		return err
	}
	defer b.close()
	where := "a private server for the run"
	if o.sharedPostgres {
		where = "the server of DATABASE_URL"
	}
	fmt.Fprintf(stdout, "ingest benchmark: Temporal dev server (WAL SQLite), Postgres %s (%s), loopback HTTP, %d senders\n\n",
		b.pgVersion, where, o.conc)
	for _, p := range []struct {
		name string
		run  func(context.Context) error
	}{{"acks", b.durableAcks}, {"start", b.startRate}, {"burst", b.burstPhase}, {"outage", b.outagePhase}} {
		if !slices.Contains(strings.Split(*phases, ","), p.name) || (p.name == "outage" && o.outage <= 0) {
			continue
		}
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("%s phase: %w", p.name, err)
		}
	}
	return nil
}

// bench is the stack the phases share.
type bench struct {
	o         benchOptions
	out       io.Writer
	dir       string
	hostPort  string
	stopTemp  func()
	tc        client.Client
	db        *postgres.DB
	dbClose   func()
	secret    []byte
	wsID      string
	pgVersion string
	hc        *http.Client
	closers   []func()
	// apis are the stops of the API servers the phases started, by URL.
	apis map[string]func()
}

func newBench(ctx context.Context, cfg Config, o benchOptions, out io.Writer) (*bench, error) {
	b := &bench{o: o, out: out, secret: []byte("bench-secret")}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	var err error
	if b.dir, err = os.MkdirTemp("", "linsync-bench-"); err != nil {
		return nil, err
	}
	b.closers = append(b.closers, func() { os.RemoveAll(b.dir) })
	if b.hostPort, err = linsynctest.FreeHostPort(); err != nil {
		return nil, err
	}
	if b.stopTemp, err = startDevTemporal(ctx, o.cli, b.dir, b.hostPort, 0, ""); err != nil {
		return nil, err
	}
	// Payloads are sealed as production seals them (main.go), the bare starts' as much as the webhooks'.
	keyURL, err := envelope.NewLocalKeyURL()
	if err != nil {
		return nil, err
	}
	keeper, err := envelope.Open(ctx, keyURL)
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, func() { _ = keeper.Close() })
	topts := client.Options{HostPort: b.hostPort, Logger: linsynctest.QuietLogger()}
	worker.EncryptPayloads(&topts, envelope.NewCodec(keeper))
	if b.tc, err = client.Dial(topts); err != nil {
		return nil, fmt.Errorf("dial temporal: %w", err)
	}
	b.closers = append(b.closers, b.tc.Close)
	// A Postgres of the run's own, unless told otherwise: durable acks wait on commits, and a server other work
	// shares (other databases' WAL on the same disk) would measure that work, not linsync.
	databaseURL := cfg.DatabaseURL
	if !o.sharedPostgres {
		pg, err := startPrivatePostgres(ctx, "", filepath.Join(b.dir, "pg"))
		if err != nil {
			return nil, fmt.Errorf("private Postgres (or -shared-postgres): %w", err)
		}
		b.closers = append(b.closers, pg.stop)
		databaseURL = pg.url("linsync")
	}
	if b.db, b.dbClose, err = benchDatabase(ctx, databaseURL); err != nil {
		return nil, err
	}
	if err := b.db.Pool().QueryRow(ctx, "SHOW server_version").Scan(&b.pgVersion); err != nil {
		return nil, err
	}
	ws, err := b.db.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		return nil, err
	}
	b.wsID = ws.ID
	if _, err := b.db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: "bench-org",
		Secret: string(b.secret)}); err != nil {
		return nil, err
	}
	b.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}
	ok = true
	return b, nil
}

func (b *bench) close() {
	if b.dbClose != nil {
		b.dbClose()
	}
	if b.stopTemp != nil {
		b.stopTemp()
	}
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// api serves linsync's API on loopback, starting workflows on taskQueue, and returns its webhook URL.
func (b *bench) api(taskQueue string) (string, error) {
	srv, err := api.New(api.Config{TaskQueue: taskQueue, DispatchWorkers: b.o.dispatchWorkers, InboxWriters: b.o.inboxWriters}, b.db, b.tc,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)                                                  //nolint:errcheck
	url := "http://" + ln.Addr().String() + "/webhooks/linear/bench" // the URL linsync registers in Linear names the workspace
	stop := sync.OnceFunc(func() { _ = hs.Close(); srv.Close() })
	if b.apis == nil {
		b.apis = map[string]func(){}
	}
	b.apis[url] = stop
	b.closers = append(b.closers, stop)
	return url, nil
}

// stopAPI stops the API serving url, so that its dispatcher's queue does not start workflows into the next phase.
func (b *bench) stopAPI(url string) {
	if stop := b.apis[url]; stop != nil {
		stop()
	}
}

// processing runs a worker and the inbox drainer on taskQueue, as production runs them, until the bench ends.
func (b *bench) processing(taskQueue string) error {
	w := worker.New(b.tc, taskQueue, worker.Activities{Deliveries: &activities.Deliveries{DB: b.db}}, sdkworker.Options{})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	dr, err := worker.NewDrainer(worker.Deps{DB: b.db, Temporal: b.tc, TaskQueue: taskQueue}, nil)
	if err != nil {
		w.Stop()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = dr.Run(ctx) }()
	b.closers = append(b.closers, func() { cancel(); <-done; w.Stop() })
	return nil
}

// discardWaiting deletes inbox items no worker of the bench will ever start (their phase's task queue has none),
// so that they do not weigh on the next phase.
func (b *bench) discardWaiting(ctx context.Context) error {
	_, err := b.db.Pool().Exec(ctx, `DELETE FROM inbox WHERE started_at IS NULL`)
	return err
}

// waitStarted waits until no inbox item waits for its start and returns when the last one started. Its polls read
// the pending items' partial index only, so that they do not weigh on what they measure; the inbox's other rows
// (every item of the run) are read once, at the end, by id from the first item of the phase.
func (b *bench) waitStarted(ctx context.Context, within time.Duration, since int64) (time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		var waiting int
		if err := b.db.Pool().QueryRow(ctx, `SELECT count(*) FROM inbox WHERE started_at IS NULL`).Scan(&waiting); err != nil {
			return time.Time{}, err
		}
		if waiting == 0 {
			var last *time.Time
			if err := b.db.Pool().QueryRow(ctx, `SELECT max(started_at) FROM inbox WHERE id > $1`, since).Scan(&last); err != nil {
				return time.Time{}, err
			}
			if last != nil {
				return *last, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d webhooks still wait for their workflow after %s", waiting, within)
		}
		// The rate is read from the items' own start times, so polling more often would only load what it measures.
		time.Sleep(250 * time.Millisecond)
	}
}

// lastInboxID is the id of the newest inbox item, from which a phase's items follow.
func (b *bench) lastInboxID(ctx context.Context) (int64, error) {
	var id int64
	err := b.db.Pool().QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM inbox`).Scan(&id)
	return id, err
}

// waitProcessed waits until want deliveries of webhook hookID are recorded by their workflows and returns how long
// that took and how many were recorded.
func (b *bench) waitProcessed(ctx context.Context, hookID string, want int) (time.Duration, int, error) {
	start := time.Now()
	deadline := start.Add(b.o.processedDeadline)
	for {
		var n int
		if err := b.db.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, hookID).
			Scan(&n); err != nil {
			return 0, 0, err
		}
		if n >= want || time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start), n, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// benchDatabase creates a throwaway migrated database beside the configured one and drops it afterwards.
func benchDatabase(ctx context.Context, databaseURL string) (*postgres.DB, func(), error) {
	name := "linsync_bench_" + uuid.NewString()[:8]
	u := replaceDatabase(databaseURL, name)
	if err := ensureDatabase(ctx, u); err != nil {
		return nil, nil, err
	}
	keyURL, err := envelope.NewLocalKeyURL()
	if err != nil {
		return nil, nil, err
	}
	db, _, closeStore, err := openStore(ctx, Config{SecretsKeyURL: keyURL, DatabaseURL: u})
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		closeStore()
		if conn, err := pgx.Connect(context.Background(), replaceDatabase(databaseURL, "postgres")); err == nil {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(context.Background())
		}
	}
	if err := db.Migrate(ctx); err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, cleanup, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func peerPath(dir string) string {
	if filepath.IsAbs(dir) {
		return dir
	}
	return mustAbs(dir)
}
