//go:build !nodev

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

// durableAcks compares linsync's durable webhook ack with the Express peer's non-durable one: the same signed
// webhooks from the same load generator, each target twice, alternately, in this run.
func (b *bench) durableAcks(ctx context.Context) error {
	// Each of linsync's runs gets an API of its own, stopped after the run, and what it acknowledged but did not
	// start is discarded: its dispatcher would otherwise start those workflows through the peer's next run, on the
	// machine the peer is measured on. No worker: this phase measures the ack, what it started is not run.
	linsync := func(n int) (result, error) {
		url, err := b.api("bench-acks")
		if err != nil {
			return result{}, err
		}
		r, err := closedLoop(n, b.o.conc, b.sender(url, "bench-acks").post)
		b.stopAPI(url)
		if derr := b.discardWaiting(ctx); err == nil {
			err = derr
		}
		return r, err
	}
	var peer *sender
	if !b.o.skipPeer {
		peerURL, stop, err := startPeer(ctx, peerPath(b.o.peerDir), string(b.secret))
		if err != nil {
			return fmt.Errorf("express peer: %w (skip it with -skip-peer)", err)
		}
		defer stop()
		peer = b.sender(peerURL, "bench-peer")
		if _, err := closedLoop(b.o.acks/5, b.o.conc, peer.post); err != nil { // warm the peer's JIT
			return err
		}
	}
	if _, err := linsync(b.o.acks / 5); err != nil {
		return err
	}
	if b.o.cpuProfile != "" {
		f, err := os.Create(b.o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var ls, ps []result
	for range 2 {
		if peer != nil {
			r, err := closedLoop(b.o.acks, b.o.conc, peer.post)
			if err != nil {
				return err
			}
			ps = append(ps, r)
		}
		r, err := linsync(b.o.acks)
		if err != nil {
			return err
		}
		ls = append(ls, r)
	}
	fmt.Fprintf(b.out, "1. durable webhook ack vs the Express peer (%d signed webhooks per run, %d senders, two runs each)\n",
		b.o.acks, b.o.conc)
	printHeader(b.out)
	for i := range ls {
		if peer != nil {
			printRow(b.out, fmt.Sprintf("Express peer, run %d (not durable)", i+1), ps[i])
		}
		printRow(b.out, fmt.Sprintf("linsync, run %d (inbox, durable)", i+1), ls[i])
	}
	l := mean(ls)
	if peer != nil {
		p := mean(ps)
		fmt.Fprintf(b.out, "ratio linsync/peer: acks/s %.2f (target >= 1.0: %s), p99 %.2f (%s vs %s)\n",
			l.rate/p.rate, verdict(l.rate >= p.rate), float64(l.p99)/float64(p.p99), l.p99.Round(10*time.Microsecond),
			p.p99.Round(10*time.Microsecond))
	}
	fmt.Fprintln(b.out)
	return nil
}

// startRate compares the rate at which webhooks become started workflows (acked, then started by the dispatcher)
// with bare Temporal starts, on the same server, when Temporal keeps up; then the ack latency at half that rate.
func (b *bench) startRate(ctx context.Context) error {
	url, err := b.api("bench-ingest") // no worker here either: the rate of starts is what is measured
	if err != nil {
		return err
	}
	hook := b.sender(url, "bench-ingest")
	// A bare start is the start the dispatcher makes, without linsync's path before it: the same workflow, options
	// and input (a delivery carrying a body like the webhooks'), so that the ratio is the path's cost, not the
	// payload's (Temporal's cost per start grows with its input).
	bare := func(i int) (int, error) {
		now := time.Now().UTC()
		in := workflows.LinearDeliveryInput{DeliveryID: uuid.NewString(), WorkspaceID: b.wsID,
			OrganizationID: "bench-org", WebhookID: "bench-bare", EventType: "Project", Action: "create",
			EntityID: uuid.NewString(), KnownType: true, WebhookTimestamp: now, ReceivedAt: now,
			Body: hook.body(i, now), ContentHash: strings.Repeat("0", 64)}
		_, err := b.tc.ExecuteWorkflow(ctx, workflows.StartOnce(workflows.LinearDeliveryWorkflowID(b.wsID, in.DeliveryID),
			"bench-bare"), workflows.TypeLinearDelivery, in)
		if err != nil {
			return 0, err
		}
		return http.StatusOK, nil
	}
	started := func() (result, error) {
		since, err := b.lastInboxID(ctx)
		if err != nil {
			return result{}, err
		}
		begin := time.Now()
		r, err := closedLoop(b.o.n, b.o.conc, hook.post)
		if err != nil {
			return r, err
		}
		last, err := b.waitStarted(ctx, 5*time.Minute, since)
		if err != nil {
			return r, err
		}
		r.rate = float64(b.o.n) / last.Sub(begin).Seconds()
		return r, nil
	}
	if _, err := closedLoop(b.o.n/5, b.o.conc, bare); err != nil { // warm the server and both paths
		return err
	}
	if _, err := started(); err != nil {
		return err
	}
	// Bare, webhooks, bare, webhooks, bare: the server's drift over the phase (its database grows) weighs on both.
	var bares, hooks []result
	for i := range 5 {
		run, into := started, &hooks
		if i%2 == 0 {
			run, into = func() (result, error) { return closedLoop(b.o.n, b.o.conc, bare) }, &bares
		}
		r, err := run()
		if err != nil {
			return err
		}
		*into = append(*into, r)
	}
	bareRate, w := mean(bares).rate, mean(hooks)
	half := bareRate / 2
	since, err := b.lastInboxID(ctx)
	if err != nil {
		return err
	}
	paced, err := openLoop(b.o.n/2, half, hook.post)
	if err != nil {
		return err
	}
	if _, err := b.waitStarted(ctx, 5*time.Minute, since); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "2. webhooks started as workflows vs bare Temporal starts (%d per phase, %d concurrent)\n", b.o.n, b.o.conc)
	printHeader(b.out)
	for i := range bares {
		printRow(b.out, fmt.Sprintf("bare Temporal start, run %d", i+1), bares[i])
		if i < len(hooks) {
			printRow(b.out, fmt.Sprintf("webhook acked, then started, run %d", i+1), hooks[i])
		}
	}
	printRow(b.out, fmt.Sprintf("webhook ack paced at %.0f/s", half), paced)
	ratio := w.rate / bareRate
	fmt.Fprintf(b.out, "ratio started/bare: %.3f (target >= 0.90: %s)\n", ratio, verdict(ratio >= 0.9))
	fmt.Fprintf(b.out, "ack p99 at half the bare rate: %s (target < 250ms: %s)\n\n", paced.p99.Round(time.Millisecond),
		verdict(paced.p99 < 250*time.Millisecond))
	return nil
}

// burstPhase sends a burst at high concurrency to an API whose workflows a worker runs, and counts every webhook
// processed (recorded in webhook_deliveries by its workflow).
func (b *bench) burstPhase(ctx context.Context) error {
	url, err := b.api("bench")
	if err != nil {
		return err
	}
	if err := b.processing("bench"); err != nil {
		return err
	}
	hook := b.sender(url, "bench-burst")
	r, err := closedLoop(b.o.burst, b.o.burstConc, hook.post)
	if err != nil && r.non200 == 0 {
		return err
	}
	took, processed, err := b.waitProcessed(ctx, "bench-burst", b.o.burst)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "3. burst: %d signed webhooks at concurrency %d, a worker processing them\n", b.o.burst, b.o.burstConc)
	printHeader(b.out)
	printRow(b.out, "burst ack", r)
	fmt.Fprintf(b.out, "ack p99 %s (target < 1s: %s); answers other than 200: %d (target 0: %s)\n",
		r.p99.Round(time.Millisecond), verdict(r.p99 < time.Second), r.non200, verdict(r.non200 == 0))
	fmt.Fprintf(b.out, "processed (webhook_deliveries rows): %d of %d, the last %s after the burst (%s)\n\n",
		processed, b.o.burst, took.Round(100*time.Millisecond), verdict(processed == b.o.burst))
	return nil
}

// outagePhase sends webhooks at a steady rate while Temporal is stopped for o.outage, then restarted on the same
// file, and counts answers other than 200 and webhooks processed once it is back.
func (b *bench) outagePhase(ctx context.Context) error {
	url, err := b.api("bench")
	if err != nil {
		return err
	}
	hook := b.sender(url, "bench-outage")
	lead := 10 * time.Second
	total := lead + b.o.outage + lead
	n := int(b.o.outageRate * total.Seconds())
	var stopErr error
	var downAt, upAt time.Time
	go func() {
		time.Sleep(lead)
		b.stopTemp()
		b.stopTemp = nil
		downAt = time.Now()
		time.Sleep(b.o.outage)
		b.stopTemp, stopErr = startDevTemporal(context.Background(), b.o.cli, b.dir, b.hostPort, 0, "")
		upAt = time.Now()
	}()
	r, err := openLoop(n, b.o.outageRate, hook.post)
	if err != nil && r.non200 == 0 {
		return err
	}
	for upAt.IsZero() && stopErr == nil {
		time.Sleep(100 * time.Millisecond)
	}
	if stopErr != nil {
		return fmt.Errorf("restart temporal: %w", stopErr)
	}
	took, processed, err := b.waitProcessed(ctx, "bench-outage", n)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "4. Temporal stopped for %s (down %s, up %s) under %d webhooks at %.0f/s\n", b.o.outage,
		downAt.Format("15:04:05"), upAt.Format("15:04:05"), n, b.o.outageRate)
	printHeader(b.out)
	printRow(b.out, "ack through the outage", r)
	fmt.Fprintf(b.out, "answers other than 200: %d (target 0: %s)\n", r.non200, verdict(r.non200 == 0))
	fmt.Fprintf(b.out, "processed (webhook_deliveries rows): %d of %d, the last %s after the load ended (%s)\n\n",
		processed, n, took.Round(100*time.Millisecond), verdict(processed == n))
	return nil
}

// sender posts fresh signed webhooks, as Linear would, to one URL.
type sender struct {
	hc     *http.Client
	url    string
	secret []byte
	hookID string
}

func (b *bench) sender(url, hookID string) *sender {
	return &sender{hc: b.hc, url: url, secret: b.secret, hookID: hookID}
}

// benchDescription pads the bodies to the size of a real Issue or Project payload (1–2 KiB).
var benchDescription = strings.Repeat("A signed webhook body about the size Linear sends. ", 20)

// body is the i-th Project webhook's body, signed at now.
func (s *sender) body(i int, now time.Time) []byte {
	body, _ := json.Marshal(map[string]any{
		"action": "create", "type": "Project", "organizationId": "bench-org", "webhookId": s.hookID,
		"webhookTimestamp": now.UnixMilli(), "createdAt": now.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"id": uuid.NewString(), "name": fmt.Sprintf("bench project %d", i),
			"description": benchDescription, "state": "planned"},
	})
	return body
}

// post sends one Project webhook (no handler in linsync: its workflow records it) and returns the status.
func (s *sender) post(i int) (int, error) {
	body := s.body(i, time.Now())
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(linear.HeaderDelivery, uuid.NewString())
	req.Header.Set(linear.HeaderEvent, "Project")
	req.Header.Set(linear.HeaderSignature, linear.Sign(s.secret, body))
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// startPeer installs the Express peer's dependencies (once) and runs it on a free loopback port.
func startPeer(ctx context.Context, dir, secret string) (string, func(), error) {
	if _, err := os.Stat(dir + "/node_modules/express"); err != nil {
		npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
		}
	}
	hostPort, err := linsynctest.FreeHostPort()
	if err != nil {
		return "", nil, err
	}
	port := hostPort[strings.LastIndex(hostPort, ":")+1:]
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = childEnv("PORT="+port, "LINEAR_WEBHOOK_SECRET="+secret)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start node server.js: %w", err)
	}
	go func() { // keep the pipe drained; show what the peer says when it fails
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, "express peer:", sc.Text())
		}
	}()
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	base := "http://" + hostPort
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/stats")
		if err == nil {
			resp.Body.Close()
			return base + "/webhooks/linear", stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("the peer did not answer on " + base)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	non200   int
}

func mean(rs []result) result {
	var m result
	for _, r := range rs {
		m.rate += r.rate / float64(len(rs))
		m.p50 += r.p50 / time.Duration(len(rs))
		m.p99 += r.p99 / time.Duration(len(rs))
		m.non200 += r.non200
	}
	return m
}

func printHeader(w io.Writer) {
	fmt.Fprintf(w, "  %-40s %9s %9s %9s %7s\n", "phase", "per s", "p50", "p99", "non-200")
}

func printRow(w io.Writer, name string, r result) {
	round := func(d time.Duration) time.Duration {
		if d < 10*time.Millisecond {
			return d.Round(10 * time.Microsecond)
		}
		return d.Round(time.Millisecond)
	}
	fmt.Fprintf(w, "  %-40s %9.1f %9s %9s %7d\n", name, r.rate, round(r.p50), round(r.p99), r.non200)
}

// loadTally records the latency and answer of each call of a load phase.
type loadTally struct {
	lat      []time.Duration
	non200   atomic.Int64
	once     sync.Once
	firstErr error
	start    time.Time
}

func newLoadTally(n int) *loadTally {
	return &loadTally{lat: make([]time.Duration, n), start: time.Now()}
}

func (t *loadTally) do(i int, call func(int) (int, error)) {
	begin := time.Now()
	status, err := call(i)
	t.lat[i] = time.Since(begin)
	if status != http.StatusOK {
		t.non200.Add(1)
		t.once.Do(func() { t.firstErr = err })
	}
}

// result reports throughput, latency percentiles and answers other than 200; the error is the first failure.
func (t *loadTally) result() (result, error) {
	r := summarize(t.lat, time.Since(t.start))
	r.non200 = int(t.non200.Load())
	return r, t.firstErr
}

// closedLoop runs n calls with conc workers.
func closedLoop(n, conc int, call func(int) (int, error)) (result, error) {
	t := newLoadTally(n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				t.do(i, call)
			}
		})
	}
	wg.Wait()
	return t.result()
}

// openLoop issues n calls at a fixed rate whatever the latency, as Linear would.
func openLoop(n int, rate float64, call func(int) (int, error)) (result, error) {
	t := newLoadTally(n)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	for i := range n {
		time.Sleep(time.Until(t.start.Add(time.Duration(i) * interval)))
		wg.Go(func() { t.do(i, call) })
	}
	wg.Wait()
	return t.result()
}

func summarize(lat []time.Duration, total time.Duration) result {
	s := slices.Clone(lat)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return result{rate: float64(len(lat)) / total.Seconds(), p50: pct(0.50), p99: pct(0.99)}
}
