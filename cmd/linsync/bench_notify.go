//go:build !nodev

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/worker"
)

// benchNotify measures notifications end to end: signed Linear deliveries posted at a steady rate to linsync's
// webhook, each matched by three rules whose three webhook targets are one local receiver, and the time from the
// delivery's 200 (accepted: durable in the inbox) to each message reaching the receiver; and how many HTTP requests
// the receiver got per message (one, when nothing is retried or doubled).
func benchNotify(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench notify", flag.ContinueOnError)
	rate := fs.Float64("rate", 50, "deliveries per second")
	dur := fs.Duration("d", 30*time.Second, "how long deliveries are sent")
	cli := fs.String("temporal-cli", ".cache/bin/temporal", "the Temporal CLI binary")
	shared := fs.Bool("shared-postgres", false, "use the server of DATABASE_URL instead of a private Postgres")
	within := fs.Duration("within", 5*time.Minute, "how long to wait for every message after the last delivery")
	pollers := fs.Int("pollers", 0, "the worker's activity and workflow task pollers (0: the SDK's default, as production)")
	nRules := fs.Int("rules", 3, "rules matching every delivery, 0 to 3 (0: the deliveries alone, for comparison)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := newBench(ctx, cfg, benchOptions{cli: *cli, sharedPostgres: *shared}, stdout)
	if err != nil {
		return err
	}
	defer b.close()

	// The receiver: every request, and when each (delivery, rule) message first arrived.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	var requests atomic.Int64
	recv, stopRecv, err := serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		requests.Add(1)
		var msg struct {
			ID   string            `json:"id"`
			Rule map[string]string `json:"rule"`
		}
		raw, _ := io.ReadAll(r.Body)
		if json.Unmarshal(raw, &msg) == nil {
			mu.Lock()
			if _, ok := arrived[msg.ID+"|"+msg.Rule["id"]]; !ok {
				arrived[msg.ID+"|"+msg.Rule["id"]] = at
			}
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return err
	}
	defer stopRecv()

	const taskQueue = "bench-notify"
	matches := []linsync.NotificationMatch{{Types: []string{"Project"}}, {Actions: []string{"create"}},
		{Types: []string{"Project"}, Actions: []string{"create"}}}
	matches = matches[:max(0, min(*nRules, len(matches)))]
	for i, m := range matches {
		t, err := b.db.CreateNotificationTarget(ctx, b.wsID, linsync.NotificationTargetInput{Name: fmt.Sprintf("receiver-%d", i),
			Kind: linsync.NotifyWebhook, URL: fmt.Sprintf("%s/hook/%d", recv, i), Secret: "whsec_YmVuY2gtc2VjcmV0"})
		if err != nil {
			return err
		}
		if _, err := b.db.SaveNotificationRule(ctx, b.wsID, linsync.NotificationRule{Name: fmt.Sprintf("rule-%d", i),
			Enabled: true, Match: m, TargetIDs: []string{t.ID}}); err != nil {
			return err
		}
	}
	acts, err := worker.NewActivities(worker.Deps{DB: b.db, Temporal: b.tc, TaskQueue: taskQueue, AllowPrivateNotifications: true})
	if err != nil {
		return err
	}
	w := worker.New(b.tc, taskQueue, worker.Activities{Deliveries: acts.Deliveries, Notifications: acts.Notifications},
		sdkworker.Options{MaxConcurrentActivityTaskPollers: *pollers, MaxConcurrentWorkflowTaskPollers: *pollers})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	url, err := b.api(taskQueue)
	if err != nil {
		return err
	}

	n := int(*rate * dur.Seconds())
	accepted := make([]time.Time, n)
	ids := make([]string, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / *rate)
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		ids[i] = uuid.NewString()
		wg.Go(func() {
			if err := b.postProject(url, ids[i], i); err != nil {
				failed.Add(1)
				return
			}
			accepted[i] = time.Now()
		})
	}
	wg.Wait()
	sent := time.Since(start)
	want := len(matches) * (n - int(failed.Load()))
	deadline := time.Now().Add(*within)
	for {
		mu.Lock()
		got := len(arrived)
		mu.Unlock()
		if got >= want || time.Now().After(deadline) || (want == 0 && b.recorded(ctx) >= n) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	ruleIDs, err := b.db.EnabledNotificationRules(ctx, b.wsID)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if accepted[i].IsZero() {
			continue
		}
		for _, r := range ruleIDs {
			if at, ok := arrived[id+"|"+r.ID]; ok {
				lat = append(lat, at.Sub(accepted[i]))
			}
		}
	}
	fmt.Fprintf(stdout, "notification benchmark: %d deliveries at %.0f/s over %s (%d refused), %d rules each, webhook targets on a local receiver, Temporal dev server, Postgres %s\n",
		n, *rate, sent.Round(time.Millisecond), failed.Load(), len(matches), b.pgVersion)
	if len(lat) == 0 && want > 0 {
		return fmt.Errorf("no message arrived")
	}
	if want > 0 {
		r := summarize(lat, sent)
		fmt.Fprintf(stdout, "messages received: %d of %d; accepted→received p50 %s, p99 %s\n", len(lat), want,
			r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond))
	}
	// Where the time goes: from the 200 to the delivery's record (its workflow started, handled and recorded, before
	// any message is sent).
	var recLat []time.Duration
	for i, id := range ids {
		var at time.Time
		if accepted[i].IsZero() || b.db.Pool().QueryRow(ctx, `SELECT processed_at FROM webhook_deliveries WHERE delivery_id = $1`, id).Scan(&at) != nil {
			continue
		}
		recLat = append(recLat, at.Sub(accepted[i]))
	}
	if len(recLat) > 0 {
		rr := summarize(recLat, sent)
		fmt.Fprintf(stdout, "of which accepted→delivery recorded p50 %s, p99 %s\n", rr.p50.Round(time.Millisecond), rr.p99.Round(time.Millisecond))
	}
	if want > 0 {
		fmt.Fprintf(stdout, "HTTP calls per message: %.3f (target: 1: %s)\n", float64(requests.Load())/float64(len(arrived)),
			verdict(requests.Load() == int64(len(arrived))))
	}
	return nil
}

// recorded is how many deliveries their workflows have recorded.
func (b *bench) recorded(ctx context.Context) int {
	var n int
	_ = b.db.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&n)
	return n
}

// postProject posts one signed Project/create delivery with the given Linear-Delivery id; every bench rule matches it.
func (b *bench) postProject(url, deliveryID string, i int) error {
	now := time.Now()
	body, _ := json.Marshal(map[string]any{
		"action": "create", "type": "Project", "organizationId": "bench-org", "webhookId": "bench-hook",
		"webhookTimestamp": now.UnixMilli(), "createdAt": now.UTC().Format(time.RFC3339Nano),
		"url": "https://linear.app/bench/project/p" + fmt.Sprint(i),
		"data": map[string]any{"id": uuid.NewString(), "name": fmt.Sprintf("bench project %d", i),
			"description": benchDescription, "state": "planned", "url": "https://linear.app/bench/project/p" + fmt.Sprint(i)},
	})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(linear.HeaderDelivery, deliveryID)
	req.Header.Set(linear.HeaderEvent, "Project")
	req.Header.Set(linear.HeaderSignature, linear.Sign(b.secret, body))
	resp, err := b.hc.Do(req)
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
