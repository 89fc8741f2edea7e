package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

// privateTemporal is a Temporal dev server of one test's own, file-backed so that what it took survives a stop and
// a start on the same address.
type privateTemporal struct {
	t        *testing.T
	hostPort string
	dbFile   string
	srv      *testsuite.DevServer
	client   client.Client
}

func newPrivateTemporal(t *testing.T) *privateTemporal {
	t.Helper()
	hostPort, err := linsynctest.FreeHostPort()
	require.NoError(t, err)
	p := &privateTemporal{t: t, hostPort: hostPort, dbFile: filepath.Join(t.TempDir(), "temporal.db")}
	p.start()
	p.client, err = client.Dial(client.Options{HostPort: hostPort, Logger: quiet{}})
	require.NoError(t, err)
	t.Cleanup(p.client.Close)
	t.Cleanup(func() {
		if p.srv != nil {
			_ = p.srv.Stop()
		}
	})
	return p
}

func (p *privateTemporal) start() {
	p.t.Helper()
	srv, err := linsynctest.StartDevServer(context.Background(), p.hostPort, p.dbFile)
	require.NoError(p.t, err)
	p.srv = srv
}

func (p *privateTemporal) stop() {
	p.t.Helper()
	require.NoError(p.t, p.srv.Stop())
	p.srv = nil
}

// deliveryWorker runs what a Linear delivery needs: its record, the question handlers it routes to, access (for
// OAuthApp revocations) and dead letters.
var deliveryWorker = stackWorker{deliveries: true, questions: true, access: true, deadLetters: true}

// readyz returns /readyz's status and body.
func (s *stack) readyz() (int, map[string]any) {
	s.t.Helper()
	resp, raw := s.opsRequest("/readyz")
	var out map[string]any
	require.NoError(s.t, json.Unmarshal(raw, &out), "%s", raw)
	return resp.StatusCode, out
}

// opsRequest GETs path from the operations listener, where readiness and metrics are served.
func (s *stack) opsRequest(path string) (*http.Response, []byte) {
	s.t.Helper()
	resp, err := http.Get(s.ops.URL + path)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, raw
}

// metric returns the value of an unlabelled gauge on /metrics, or -1 when it is absent.
func (s *stack) metric(name string) float64 {
	s.t.Helper()
	resp, raw := s.opsRequest("/metrics")
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			require.NoError(s.t, json.Unmarshal([]byte(v), &f))
			return f
		}
	}
	return -1
}

// counter reads a counter of the API's registry by one label's value (0 when it has not counted yet).
func (s *stack) counter(name, label, value string) float64 {
	s.t.Helper()
	mfs, err := s.reg.Gather()
	require.NoError(s.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// runs counts the runs Temporal has of a workflow ID.
func (s *stack) runs(workflowID string) int {
	s.t.Helper()
	resp, err := s.temporal.ListWorkflow(s.t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: "WorkflowId = '" + workflowID + "'"})
	require.NoError(s.t, err)
	return len(resp.GetExecutions())
}

// TestTemporalDownEverythingAcceptedThenProcessed: with Temporal stopped, a webhook, an event and a question are
// all acknowledged (persisted in the inbox, not refused); readiness says degraded and shows the inbox growing, as
// do the sync-status view and the metrics. Once Temporal is back, the drainer starts them and each is processed.
func TestTemporalDownEverythingAcceptedThenProcessed(t *testing.T) {
	t.Parallel()
	pt := newPrivateTemporal(t)
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: time.Second}, temporal: pt.client,
		worker: everyCapability, workspace: "ops", webhook: webhookStored,
		connect: &stackConnection{orgName: "Fake"}, deliver: true,
		tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin}}}})
	s.reg.MustRegister(api.InboxCollector(s.db))
	h := &harness{stack: s}
	token := s.tokens["admin"]
	call := func(method, path string, body any) (int, map[string]any) {
		resp, raw := s.request(s.client, method, "/v1/workspaces/ops"+path, body, "Authorization", "Bearer "+token,
			"Content-Type", "application/json")
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
		return resp.StatusCode, out
	}

	pt.stop()
	d := h.signedAt("/webhooks/linear/ops", issueBody(s.sd.OrganizationID, time.Now()))
	status, resp := h.post(d)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	require.Equal(t, "accepted", resp["status"], "persisted in the inbox: a 200 Linear will not retry, and need not")
	code, ev := call(http.MethodPost, "/events", takeoverEvent("tk-down", "down.example.com"))
	require.Equal(t, http.StatusAccepted, code, "%v", ev)
	code, q := call(http.MethodPost, "/questions", map[string]any{"title": "Asked while Temporal was down",
		"asker_email": "alice@example.com", "external_id": "q-down"})
	require.Equal(t, http.StatusCreated, code, "creating a question does not need Temporal: %v", q)

	code, ready := s.readyz()
	require.Equal(t, http.StatusOK, code, "an API that persists work stays in the load balancer: %v", ready)
	require.Equal(t, "degraded", ready["status"])
	require.Equal(t, "unavailable", ready["temporal"])
	require.GreaterOrEqual(t, ready["inbox"].(map[string]any)["depth"], float64(3))
	code, st := call(http.MethodGet, "/sync-status", nil)
	require.Equal(t, http.StatusOK, code, "%v", st)
	require.GreaterOrEqual(t, st["inbox"].(map[string]any)["depth"], float64(3))
	require.GreaterOrEqual(t, s.metric("linsync_inbox_depth"), float64(3))

	pt.start()
	h.waitDone(d.id)
	rec, err := s.db.FindDelivery(t.Context(), s.wsID, d.id)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeIgnored, rec.Outcome, "an issue no question is linked to: %s", rec.Detail)
	require.Eventually(t, func() bool {
		titles := map[string]int{}
		for _, is := range (&fHarness{stack: s}).fakeIssues() {
			titles[is["title"].(string)]++
		}
		return titles["Asked while Temporal was down"] == 1 && len(titles) == 2
	}, 60*time.Second, 200*time.Millisecond, "the question and the event reached Linear once each")
	require.Eventually(t, func() bool {
		_, st = call(http.MethodGet, "/sync-status", nil)
		return st["inbox"].(map[string]any)["depth"] == float64(0)
	}, 30*time.Second, 100*time.Millisecond, "the inbox drained")
	require.Zero(t, s.metric("linsync_inbox_depth"))
}

// TestPostgresDownTemporalUpStillAccepts: with the API cut off from Postgres, a webhook is started directly in
// Temporal (which persisted it, so a 200 is honest); its run records the body's content, so once Postgres is back
// a re-post of the same body under another Linear-Delivery is a duplicate.
func TestPostgresDownTemporalUpStillAccepts(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: 2 * time.Second}, noLinear: true, pgProxy: true,
		worker: deliveryWorker, workspace: "acme", webhook: webhookStored})
	h := &harness{stack: s}
	warm := h.signedAt("/webhooks/linear/acme", teamedIssueBody(t, testOrg))
	status, _ := h.post(warm) // the API now knows the workspace's secrets
	require.Equal(t, http.StatusOK, status)
	h.waitDone(warm.id)

	s.pg.setDown(true)
	d := h.signedAt("/webhooks/linear/acme", teamedIssueBody(t, testOrg))
	status, resp := h.post(d)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	require.Equal(t, "accepted", resp["status"])
	code, ready := s.readyz()
	require.Equal(t, http.StatusOK, code, "%v", ready)
	require.Equal(t, "degraded", ready["status"])
	require.Equal(t, "unavailable", ready["postgres"])
	h.waitDone(d.id)
	rec, err := s.db.FindDelivery(t.Context(), s.wsID, d.id)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeIgnored, rec.Outcome)

	s.pg.setDown(false)
	repost := d
	repost.id = uuid.NewString()
	require.Eventually(t, func() bool {
		status, resp = h.post(repost)
		return status == http.StatusOK
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, "duplicate", resp["status"], "the run recorded the body's content")
	h.requireNotStarted(repost.id)
}

// TestBothStoresDownThenByteIdenticalRetryIsAcceptedOnce: with neither Postgres nor Temporal answering, nothing
// can be persisted and the answer is 503. Linear's retry comes later with the very same bytes (the body keeps its
// first timestamp, by now older than the tolerance); it is accepted and processed once, and another copy is a
// duplicate.
func TestBothStoresDownThenByteIdenticalRetryIsAcceptedOnce(t *testing.T) {
	t.Parallel()
	pt := newPrivateTemporal(t)
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: time.Second}, temporal: pt.client, noLinear: true,
		pgProxy: true, worker: deliveryWorker, workspace: "acme", webhook: webhookStored})
	h := &harness{stack: s}
	warm := h.signedAt("/webhooks/linear/acme", teamedIssueBody(t, testOrg))
	status, _ := h.post(warm)
	require.Equal(t, http.StatusOK, status)
	h.waitDone(warm.id)

	s.pg.setDown(true)
	pt.stop()
	// The first attempt, stamped 90 s ago as its retry will still be: past the 60 s tolerance.
	first := h.signedAt("/webhooks/linear/acme", issueBody(testOrg, time.Now().Add(-90*time.Second)))
	before := h.webhookCount("unavailable")
	status, resp := h.post(first)
	require.Equal(t, http.StatusServiceUnavailable, status, "%v", resp)
	require.Equal(t, "unavailable", errorCode(resp))
	require.Equal(t, before+1, h.webhookCount("unavailable"))
	code, ready := s.readyz()
	require.Equal(t, http.StatusServiceUnavailable, code, "%v", ready)
	require.Equal(t, "not_ready", ready["status"])

	s.pg.setDown(false)
	pt.start()
	retry := first // same body, same signature, same Linear-Delivery
	retry.header = http.Header{"Linear-Timestamp": {time.Now().Format(time.RFC3339)}}
	require.Eventually(t, func() bool {
		status, resp = h.post(retry)
		return status == http.StatusOK
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, "accepted", resp["status"])
	h.waitDone(first.id)
	rec, err := s.db.FindDelivery(t.Context(), s.wsID, first.id)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeIgnored, rec.Outcome)
	status, resp = h.post(retry)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "duplicate", resp["status"])
	require.Equal(t, 1, s.runs(workflows.LinearDeliveryWorkflowID(s.wsID, first.id)))
}

// TestDeliveryInTheInboxAndDirectRunsOnce: a delivery is in the inbox (Temporal was down when it came); then, with
// Postgres unreachable, it comes again and is started directly, and the same body comes once more under another
// delivery id. When the drainer finally gets to the inbox item it finds the workflow started: the delivery runs
// once, and the re-post records itself as a duplicate of it.
func TestDeliveryInTheInboxAndDirectRunsOnce(t *testing.T) {
	t.Parallel()
	pt := newPrivateTemporal(t)
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: time.Second}, temporal: pt.client, noLinear: true,
		pgProxy: true, noDrainer: true, worker: deliveryWorker, workspace: "acme",
		webhook: webhookStored})
	h := &harness{stack: s}
	warm := h.signedAt("/webhooks/linear/acme", teamedIssueBody(t, testOrg))
	status, _ := h.post(warm)
	require.Equal(t, http.StatusOK, status)
	h.waitDone(warm.id)

	pt.stop()
	d := h.signedAt("/webhooks/linear/acme", issueBody(testOrg, time.Now()))
	status, resp := h.post(d)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	require.Equal(t, "accepted", resp["status"])
	item, err := s.db.FindInboxItem(t.Context(), s.wsID, linsync.InboxDelivery, d.id)
	require.NoError(t, err)
	require.Nil(t, item.StartedAt)

	require.Eventually(t, func() bool { return s.counter("linsync_inbox_dispatch_total", "result", "failed") == 1 },
		10*time.Second, 20*time.Millisecond, "the dispatcher gave the item up to the drainer")
	pt.start()
	s.pg.setDown(true)
	require.Eventually(t, func() bool { // until the client has found the restarted server, as Linear would retry
		status, resp = h.post(d)
		return status == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "%v", resp)
	require.Equal(t, "accepted", resp["status"], "started directly: Postgres is away")
	repost := d
	repost.id = uuid.NewString()
	status, resp = h.post(repost)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	s.pg.setDown(false)

	h.waitDone(d.id)
	h.waitDone(repost.id)
	s.runDrainer()
	require.Eventually(t, func() bool {
		item, err = s.db.FindInboxItem(t.Context(), s.wsID, linsync.InboxDelivery, d.id)
		return err == nil && item.StartedAt != nil
	}, 30*time.Second, 100*time.Millisecond, "the drainer marked the inbox item, finding its workflow started")
	require.Equal(t, 1, s.runs(workflows.LinearDeliveryWorkflowID(s.wsID, d.id)), "one run")
	rec, err := s.db.FindDelivery(t.Context(), s.wsID, d.id)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeIgnored, rec.Outcome)
	dup, err := s.db.FindDelivery(t.Context(), s.wsID, repost.id)
	require.NoError(t, err)
	require.Equal(t, linsync.OutcomeDuplicate, dup.Outcome, "the re-posted body ran nothing")
	require.Contains(t, dup.Detail, d.id)
}

// TestTraceContextReachesTheInbox: the caller's W3C trace context is kept with the inbox item, so the workflow
// started from it later continues the request's trace.
func TestTraceContextReachesTheInbox(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noLinear: true, workspace: "acme", webhook: webhookStored})
	h := &harness{stack: s}
	d := h.signedAt("/webhooks/linear/acme", issueBody(testOrg, time.Now()))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	d.header = http.Header{"Traceparent": {tp}}
	status, resp := h.post(d)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	item, err := s.db.FindInboxItem(t.Context(), s.wsID, linsync.InboxDelivery, d.id)
	require.NoError(t, err)
	require.Equal(t, tp, item.TraceContext)
}
