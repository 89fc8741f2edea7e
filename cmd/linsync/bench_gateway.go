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
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear/lineartest"
)

// benchGateway measures what the agent gateway adds to a call to Linear: the same query and the same mutation sent
// to the fake Linear directly and through the proxy (agent key, parsing and classification against Linear's schema,
// policy, the workspace's credential, the audit write), interleaved in one run, one at a time, over loopback.
func benchGateway(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench gateway", flag.ContinueOnError)
	n := fs.Int("n", 400, "calls per path and operation")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, cleanup, err := benchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer cleanup()

	fake, err := lineartest.New(lineartest.Options{RequestsPerHour: 1 << 30})
	if err != nil {
		return err
	}
	defer fake.Close()
	sd := fake.Seed()
	fakeURL, stopFake, err := serveLoopback(fake.Handler())
	if err != nil {
		return err
	}
	defer stopFake()

	ws, err := db.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		return err
	}
	if _, err := db.SaveConnection(ctx, linsync.ConnectionInput{WorkspaceID: ws.ID, OrganizationID: sd.OrganizationID,
		AuthKind: linsync.AuthAPIKey, Credential: sd.APIKey, ActorUserID: sd.Bot.ID, ActorName: sd.Bot.Name,
		DefaultTeam: sd.Plain.ID}); err != nil {
		return err
	}
	_, agentKey, err := db.CreateAgentKey(ctx, ws.ID, "bench-agent", linsync.AgentPolicy{})
	if err != nil {
		return err
	}
	// Two APIs on the same database: the default, which flushes every audit entry to disk before answering, and one
	// that lets allowed calls' entries commit without waiting (LINSYNC_GATEWAY_AUDIT_ASYNC), so the disk's share shows.
	apiURLs := map[bool]string{}
	for _, async := range []bool{false, true} {
		srv, err := api.New(api.Config{TaskQueue: "bench", LinearEndpoint: fakeURL + "/graphql", GatewayAuditAsync: async},
			db, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
		if err != nil {
			return err
		}
		u, stop, err := serveLoopback(srv.Handler())
		if err != nil {
			return err
		}
		defer stop()
		apiURLs[async] = u
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	direct := func(body []byte) error {
		return postGraphQL(ctx, hc, fakeURL+"/graphql", body, "Authorization", sd.APIKey)
	}
	proxyVia := func(async bool) func(body []byte) error {
		return func(body []byte) error {
			return postGraphQL(ctx, hc, apiURLs[async]+"/v1/workspaces/bench/proxy/linear/graphql", body,
				"Authorization", "Bearer "+agentKey, "X-Agent-Id", "bench-agent")
		}
	}
	proxy, proxyAsync := proxyVia(false), proxyVia(true)
	query := []byte(`{"query":"query Team($id: String!) { team(id: $id) { id key name states { nodes { id name type } } } }","variables":{"id":"` + sd.Plain.ID + `"}}`)
	mutation := func(i int) []byte {
		b, _ := json.Marshal(map[string]any{
			"query":     "mutation IssueCreate($input: IssueCreateInput!) { issueCreate(input: $input) { success issue { id identifier } } }",
			"variables": map[string]any{"input": map[string]any{"teamId": sd.Plain.ID, "title": fmt.Sprintf("bench issue %d", i), "priority": 3}},
		})
		return b
	}

	// Warm up both paths (connections, the schema parse, the client cache).
	for i := range 20 {
		for _, call := range []func() error{func() error { return direct(query) }, func() error { return proxy(query) },
			func() error { return proxyAsync(query) }, func() error { return direct(mutation(-i)) },
			func() error { return proxy(mutation(-i - 100)) }} {
			if err := call(); err != nil {
				return err
			}
		}
	}
	lat := map[string][]time.Duration{}
	timed := func(name string, call func() error) error {
		t := time.Now()
		if err := call(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		lat[name] = append(lat[name], time.Since(t))
		return nil
	}
	for i := range *n {
		// Interleaved, so both paths see the same machine at the same moment.
		steps := []struct {
			name string
			call func() error
		}{
			{"query direct", func() error { return direct(query) }},
			{"query proxy", func() error { return proxy(query) }},
			{"query async", func() error { return proxyAsync(query) }},
			{"mutation direct", func() error { return direct(mutation(3 * i)) }},
			{"mutation proxy", func() error { return proxy(mutation(3*i + 1)) }},
			{"mutation async", func() error { return proxyAsync(mutation(3*i + 2)) }},
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			if err := timed(s.name, s.call); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "gateway benchmark: %d calls per path and operation, one at a time, loopback, fake Linear\n", *n)
	fmt.Fprintf(stdout, "%-18s %9s %9s\n", "path", "p50", "p99")
	res := map[string]result{}
	for _, name := range []string{"query direct", "query proxy", "query async", "mutation direct", "mutation proxy", "mutation async"} {
		r := summarize(lat[name], time.Second)
		res[name] = r
		fmt.Fprintf(stdout, "%-18s %9s %9s\n", name, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
	}
	for _, op := range []string{"query", "mutation"} {
		d := res[op+" direct"]
		for _, via := range []string{"proxy", "async"} {
			p := res[op+" "+via]
			over50, over99 := p.p50-d.p50, p.p99-d.p99
			fmt.Fprintf(stdout, "%-8s added by the %-7s p50 %s, p99 %s (p99 %.1fx direct; target p99 overhead < 20ms: %s)\n",
				op, via+":", over50.Round(10*time.Microsecond), over99.Round(10*time.Microsecond), float64(p.p99)/float64(d.p99),
				verdict(over99 < 20*time.Millisecond))
		}
	}
	fmt.Fprintln(stdout, "proxy: the default (every audit entry flushed to disk before the answer); async: LINSYNC_GATEWAY_AUDIT_ASYNC=true")
	return nil
}

// serveLoopback serves h on a free loopback port and returns its base URL.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln) //nolint:errcheck
	return "http://" + ln.Addr().String(), func() { _ = hs.Close() }, nil
}

// postGraphQL posts body with the header pairs and expects 200 without GraphQL errors.
func postGraphQL(ctx context.Context, hc *http.Client, url string, body []byte, header ...string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
		return fmt.Errorf("answered %d: %s", resp.StatusCode, raw)
	}
	return nil
}
