//go:build !nodev

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/envelope"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/postgres"
)

// benchCmd measures ingest: the bare Temporal start rate with a plain client loop, then signed webhooks posted over
// loopback through the real handler to the same server, in one run, and the ack latency at half the bare rate.
func benchCmd(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "host":
		return benchHost(ctx, cfg, args[1:], stdout)
	case len(args) > 0 && args[0] == "gateway":
		return benchGateway(ctx, cfg, args[1:], stdout)
	case len(args) == 0 || args[0] != "ingest":
		return fmt.Errorf("usage: linsync bench ingest [-n N] [-c CONCURRENCY] | bench host [-n LINKS] | bench gateway [-n N]")
	}
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	n := fs.Int("n", 1500, "starts per phase")
	conc := fs.Int("c", 16, "concurrent requests in the closed-loop phases")
	cli := fs.String("temporal-cli", ".cache/bin/temporal", "the Temporal CLI binary")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "linsync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hostPort, err := linsynctest.FreeHostPort()
	if err != nil {
		return err
	}
	stopTemporal, err := startDevTemporal(ctx, *cli, dir, hostPort, 0, "")
	if err != nil {
		return err
	}
	defer stopTemporal()
	tc, err := client.Dial(client.Options{HostPort: hostPort, Logger: linsynctest.QuietLogger()})
	if err != nil {
		return fmt.Errorf("dial temporal: %w", err)
	}
	defer tc.Close()

	db, cleanup, err := benchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer cleanup()
	secret := []byte("bench-secret")
	ws, err := db.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		return err
	}
	if _, err := db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: ws.ID, OrganizationID: "bench-org", Secret: string(secret)}); err != nil {
		return err
	}
	srv, err := api.New(api.Config{TaskQueue: "bench"}, db, tc, slog.New(slog.NewTextHandler(io.Discard, nil)),
		prometheus.NewRegistry())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler()}
	go httpSrv.Serve(ln) //nolint:errcheck
	defer httpSrv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}, Timeout: 10 * time.Second}
	url := "http://" + ln.Addr().String() + "/webhooks/linear"

	bare := func(i int) error {
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench-bare-" + uuid.NewString(), TaskQueue: "bench"}, "BenchNoop", i)
		return err
	}
	hook := func(i int) error { return postSigned(ctx, hc, url, secret, i) }

	fmt.Fprintf(stdout, "ingest benchmark: %d starts per phase, concurrency %d, dev server with WAL SQLite, loopback HTTP\n", *n, *conc)
	if _, err := closedLoop(*n/5, *conc, bare); err != nil { // warm up the server and both paths
		return err
	}
	if _, err := closedLoop(*n/5, *conc, hook); err != nil {
		return err
	}
	b1, err := closedLoop(*n, *conc, bare)
	if err != nil {
		return err
	}
	w, err := closedLoop(*n, *conc, hook)
	if err != nil {
		return err
	}
	b2, err := closedLoop(*n, *conc, bare)
	if err != nil {
		return err
	}
	bareRate := (b1.rate + b2.rate) / 2
	half := bareRate / 2
	paced, err := openLoop(*n/2, half, hook)
	if err != nil {
		return err
	}
	ratio := w.rate / bareRate
	fmt.Fprintf(stdout, "%-34s %9s %9s %9s\n", "phase", "starts/s", "p50", "p99")
	for _, r := range []struct {
		name string
		res  result
	}{{"bare Temporal start (before)", b1}, {"webhook ingest (closed loop)", w}, {"bare Temporal start (after)", b2},
		{fmt.Sprintf("webhook ingest paced at %.0f/s", half), paced}} {
		fmt.Fprintf(stdout, "%-34s %9.1f %9s %9s\n", r.name, r.res.rate, r.res.p50.Round(time.Millisecond), r.res.p99.Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "ratio webhook/bare: %.3f (target >= 0.90: %s)\n", ratio, verdict(ratio >= 0.9))
	fmt.Fprintf(stdout, "ack p99 at half the bare rate: %s (target < 250ms: %s)\n", paced.p99.Round(time.Millisecond), verdict(paced.p99 < 250*time.Millisecond))
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

type result struct {
	rate     float64
	p50, p99 time.Duration
}

// closedLoop runs n calls with conc workers and reports throughput and latency percentiles.
func closedLoop(n, conc int, call func(int) error) (result, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := call(i); err != nil {
					once.Do(func() { firstErr = err })
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	return summarize(lat, time.Since(start)), firstErr
}

// openLoop issues n calls at a fixed rate whatever the latency, as Linear would, and reports ack latency.
func openLoop(n int, rate float64, call func(int) error) (result, error) {
	lat := make([]time.Duration, n)
	interval := time.Duration(float64(time.Second) / rate)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			if err := call(i); err != nil {
				once.Do(func() { firstErr = err })
			}
			lat[i] = time.Since(t)
		}()
	}
	wg.Wait()
	return summarize(lat, time.Since(start)), firstErr
}

func summarize(lat []time.Duration, total time.Duration) result {
	s := slices.Clone(lat)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return result{rate: float64(len(lat)) / total.Seconds(), p50: pct(0.50), p99: pct(0.99)}
}

// postSigned posts a fresh, signed Issue webhook, as Linear would, and expects it accepted.
func postSigned(ctx context.Context, hc *http.Client, url string, secret []byte, i int) error {
	body, _ := json.Marshal(map[string]any{
		"action": "create", "type": "Issue", "organizationId": "bench-org", "webhookId": "bench-webhook",
		"webhookTimestamp": time.Now().UnixMilli(), "createdAt": time.Now().UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"id": uuid.NewString(), "title": fmt.Sprintf("bench issue %d", i), "priority": 0},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(linear.HeaderDelivery, uuid.NewString())
	req.Header.Set(linear.HeaderEvent, "Issue")
	req.Header.Set(linear.HeaderSignature, linear.Sign(secret, body))
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
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
