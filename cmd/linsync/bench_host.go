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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/worker"
	"github.com/linsync/linsync/workflows"
)

// temporalPayloadWarning is the payload size over which Temporal warns (its hard limit is 2 MB).
const temporalPayloadWarning = 512 << 10

// benchHost files one host's n broken links through the whole path (the events API, a FileEvent run per link, the
// host's aggregator, the fake Linear) on one dev server, and reports how long the host took to settle, what it
// cost in Linear requests, the largest payload in the workflows' histories and the size of the issue's description.
func benchHost(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench host", flag.ContinueOnError)
	n := fs.Int("n", 20000, "broken links on the host")
	cli := fs.String("temporal-cli", ".cache/bin/temporal", "the Temporal CLI binary")
	timeout := fs.Duration("timeout", 90*time.Minute, "give up when the host has not settled by then")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "linsync-bench-host-")
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

	fake, err := lineartest.New(lineartest.Options{RequestsPerHour: 100000})
	if err != nil {
		return err
	}
	defer fake.Close()
	sd := fake.Seed()
	fakeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fakeSrv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go fakeSrv.Serve(fakeLn) //nolint:errcheck
	defer fakeSrv.Close()

	ws, err := db.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		return err
	}
	if _, err := db.SaveConnection(ctx, linsync.ConnectionInput{WorkspaceID: ws.ID, OrganizationID: sd.OrganizationID,
		OrganizationName: "Fake Workspace", AuthKind: linsync.AuthAPIKey, Credential: sd.APIKey, ActorUserID: sd.Bot.ID,
		ActorName: sd.Bot.Name, DefaultTeam: sd.Triage.ID}); err != nil {
		return err
	}
	_, token, err := db.CreateToken(ctx, ws.ID, "scanner", []string{linsync.ScopeEventsWrite})
	if err != nil {
		return err
	}
	const tq = "bench-host"
	clients := &linear.Clients{Store: db, Endpoint: "http://" + fakeLn.Addr().String() + "/graphql"}
	acts, err := worker.NewActivities(worker.Deps{DB: db, Temporal: tc, TaskQueue: tq, Linear: clients})
	if err != nil {
		return err
	}
	w := worker.New(tc, tq, acts, sdkworker.Options{})
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	srv, err := api.New(api.Config{TaskQueue: tq, StartTimeout: 10 * time.Second}, db, tc,
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go apiSrv.Serve(apiLn) //nolint:errcheck
	defer apiSrv.Close()

	const host = "oldcampaign.example.com"
	fmt.Fprintf(stdout, "host benchmark: %d broken links on %s through the events API, one dev server, the fake Linear\n", *n, host)
	start := time.Now()
	batchURL := "http://" + apiLn.Addr().String() + "/v1/workspaces/bench/events:batch"
	// Batches of 500 (the API's most), four at a time, as a scanner finishing a large scan would send them.
	const batch = 500
	if _, err := closedLoop((*n+batch-1)/batch, 4, func(b int) (int, error) {
		items := make([]map[string]any, 0, batch)
		for i := b * batch; i < min((b+1)*batch, *n); i++ {
			path := fmt.Sprintf("spring-%05d", i)
			items = append(items, map[string]any{"id": "scan-1-" + path, "event": "link.broken", "link_id": "link-" + path,
				"short_url": "https://s.example.me/" + path, "destination_url": "https://" + host + "/landing/" + path,
				"failure_type": "http_5xx", "failure_detail": "502 Bad Gateway", "last_working_at": "2026-05-28T14:22:00Z",
				"clicks_last_7d": 2841, "clicks_last_24h": 412, "tags": []string{"paid"},
				"top_referrers": []map[string]any{{"host": "linkedin.com", "clicks": 1203}}})
		}
		if err := postBatch(ctx, batchURL, token, items); err != nil {
			return 0, err
		}
		return http.StatusOK, nil
	}); err != nil {
		return err
	}
	accepted := time.Since(start)

	var f *linsync.FiledIssue
	for {
		issues, _, err := db.ListFiledIssues(ctx, ws.ID, 10, "")
		if err != nil {
			return err
		}
		if len(issues) == 1 && issues[0].Status == linsync.FiledCreated && issues[0].EntryCount == *n &&
			issues[0].AppliedVersion == issues[0].ContentVersion {
			f = &issues[0]
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the host did not settle within %v: %d issues so far", *timeout, len(issues))
		case <-time.After(250 * time.Millisecond):
		}
	}
	settled := time.Since(start)

	lc, err := clients.New(linear.Credential{APIKey: sd.APIKey}, "bench-reader")
	if err != nil {
		return err
	}
	is, err := linear.Issue(ctx, lc.GQL(), f.ID)
	if err != nil {
		return err
	}
	desc := 0
	if is.Issue.Description != nil {
		desc = len(*is.Issue.Description)
	}
	creates, updates, all := fake.CountRequests("IssueCreate"), fake.CountRequests("IssueUpdate"), fake.CountRequests("")
	agg, err := linsynctest.ReadHistories(ctx, tc, fmt.Sprintf("WorkflowId = '%s'", workflows.HostAggregatorID(ws.ID, host)), 0)
	if err != nil {
		return err
	}
	ev, err := linsynctest.ReadHistories(ctx, tc, "WorkflowType = '"+workflows.TypeFileEvent+"'", 200)
	if err != nil {
		return err
	}
	largest := max(agg.LargestPayload, ev.LargestPayload)

	fmt.Fprintf(stdout, "accepted by the API in %s (%.0f links/s)\n", accepted.Round(time.Millisecond), float64(*n)/accepted.Seconds())
	fmt.Fprintf(stdout, "settled in Linear in %s (%.0f links/s): one issue, %d entries; the aggregator: %d runs, %d signals (%.4f per link)\n",
		settled.Round(time.Millisecond), float64(*n)/settled.Seconds(), f.EntryCount, agg.Runs, agg.Signals, float64(agg.Signals)/float64(*n))
	fmt.Fprintf(stdout, "Linear requests: %d issueCreate, %d issueUpdate, %d in all (%.4f per link; updates per second of settling %.2f)\n",
		creates, updates, all, float64(all)/float64(*n), float64(updates)/settled.Seconds())
	fmt.Fprintf(stdout, "largest payload: aggregator %d bytes, FileEvent %d bytes (%d runs sampled); %.4f of Temporal's 512 KB warning (target < 0.10: %s)\n",
		agg.LargestPayload, ev.LargestPayload, ev.Runs, float64(largest)/temporalPayloadWarning, verdict(largest < temporalPayloadWarning/10))
	fmt.Fprintf(stdout, "issue description: %d characters for %d links\n", desc, *n)
	if creates != 1 {
		return fmt.Errorf("%d issueCreate for one host, want 1", creates)
	}
	return nil
}

// postBatch posts one events:batch request and expects every item accepted.
func postBatch(ctx context.Context, url, token string, items []map[string]any) error {
	body, err := json.Marshal(map[string]any{"items": items})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Accepted int `json:"accepted"`
	}
	if resp.StatusCode >= 300 || json.Unmarshal(raw, &out) != nil || out.Accepted != len(items) {
		return fmt.Errorf("events:batch answered %d: %.300s", resp.StatusCode, raw)
	}
	return nil
}
