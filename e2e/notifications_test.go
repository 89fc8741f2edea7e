package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

// receiver stands in for Slack or a webhook endpoint: it records every request, and answers as respond says (200
// when respond is nil).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []received
	respond func(r received, n int) (status int, header map[string]string)
}

type received struct {
	at     time.Time
	header http.Header
	body   string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got := received{at: time.Now(), header: r.Header.Clone(), body: string(b)}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, got)
		n := 0 // earlier requests with the same body
		for _, p := range rc.reqs[:len(rc.reqs)-1] {
			if p.body == got.body {
				n++
			}
		}
		respond := rc.respond
		rc.mu.Unlock()
		status := http.StatusOK
		if respond != nil {
			var h map[string]string
			status, h = respond(got, n)
			for k, v := range h {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// notifyStack is the real stack with the fake Linear delivering its webhooks, a worker evaluating notification
// rules, and an admin token.
type notifyStack struct {
	*stack
	admin string
}

func newNotifyStack(t *testing.T, allowPrivate bool, digestUnit time.Duration) *notifyStack {
	t.Helper()
	s := newStack(t, stackOptions{cfg: api.Config{AllowPrivateNotifications: allowPrivate},
		linear: lineartest.Options{Now: tickingClock()}, digestUnit: digestUnit,
		worker:    stackWorker{deliveries: true, questions: true, deadLetters: true},
		workspace: "notify", webhook: webhookStored, connect: &stackConnection{},
		tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin}}}, deliver: true})
	return &notifyStack{stack: s, admin: s.tokens["admin"]}
}

func (n *notifyStack) call(method, path string, body any) (int, map[string]any) {
	n.t.Helper()
	return n.callWith(n.client, method, path, body)
}

// callBad sends a request the OpenAPI document itself refuses, past the checking client.
func (n *notifyStack) callBad(method, path string, body any) (int, map[string]any) {
	n.t.Helper()
	return n.callWith(http.DefaultClient, method, path, body)
}

func (n *notifyStack) callWith(hc *http.Client, method, path string, body any) (int, map[string]any) {
	n.t.Helper()
	resp, raw := n.request(hc, method, "/v1/workspaces/"+n.ws+path, body,
		"Authorization", "Bearer "+n.admin, "Content-Type", "application/json")
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(n.t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out
}

// target creates a target and returns its id and, for a webhook target, its secret.
func (n *notifyStack) target(name, kind, url string) (string, string) {
	n.t.Helper()
	st, out := n.call(http.MethodPost, "/notification-targets", map[string]any{"name": name, "kind": kind, "url": url})
	require.Equal(n.t, http.StatusCreated, st, out)
	secret, _ := out["secret"].(string)
	return out["target"].(map[string]any)["id"].(string), secret
}

func (n *notifyStack) rule(body map[string]any) string {
	n.t.Helper()
	st, out := n.call(http.MethodPost, "/notification-rules", body)
	require.Equal(n.t, http.StatusCreated, st, out)
	return out["rule"].(map[string]any)["id"].(string)
}

// sends returns the workspace's send records by status.
func (n *notifyStack) sends(status string) []string {
	n.t.Helper()
	rows, err := n.db.Pool().Query(n.t.Context(), `SELECT delivery_id FROM notification_sends WHERE workspace_id = $1
		AND status = $2 ORDER BY first_try_at`, n.wsID, status)
	require.NoError(n.t, err)
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(n.t, rows.Scan(&id))
		ids = append(ids, id)
	}
	return ids
}

// completeIssue creates an issue as Alice in the Plain team and moves it to Done; it returns the issue's identifier.
func (n *notifyStack) completeIssue(title string) string {
	n.t.Helper()
	h := n.fake.Human(n.sd.Alice.Email)
	id, err := h.CreateIssue(n.sd.Plain.ID, title)
	require.NoError(n.t, err)
	require.NoError(n.t, h.SetState(id, "completed"))
	return n.identifier(id)
}

func (n *notifyStack) identifier(issueID string) string {
	n.t.Helper()
	var snap struct {
		Issues []struct{ ID, Identifier string } `json:"issues"`
	}
	resp, err := http.Get(n.fake.BaseURL() + "/_fake/state")
	require.NoError(n.t, err)
	defer resp.Body.Close()
	require.NoError(n.t, json.NewDecoder(resp.Body).Decode(&snap))
	for _, is := range snap.Issues {
		if is.ID == issueID {
			return is.Identifier
		}
	}
	n.t.Fatalf("no issue %s in the fake", issueID)
	return ""
}

// waitDeliveryClosed waits for a delivery's workflow (which sends its notifications) to close and returns how.
func (n *notifyStack) waitDeliveryClosed(deliveryID string) enumspb.WorkflowExecutionStatus {
	n.t.Helper()
	var status enumspb.WorkflowExecutionStatus
	require.Eventually(n.t, func() bool {
		desc, err := n.temporal.DescribeWorkflowExecution(n.t.Context(), workflows.LinearDeliveryWorkflowID(n.wsID, deliveryID), "")
		if err != nil {
			return false
		}
		status = desc.GetWorkflowExecutionInfo().GetStatus()
		return status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}, 60*time.Second, 50*time.Millisecond)
	return status
}

// TestNotificationIssueCompletedToSlack: a human moves an issue to Done in Linear → exactly one Slack message with
// the identifier (as a link) and the title; the simulator, given the recorded delivery, shows that very message; a
// redelivery of the same body, a reset (replayed) delivery workflow and a second run of the delivery under another
// workflow ID (as after Temporal's retention) send nothing more.
func TestNotificationIssueCompletedToSlack(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 0)
	slack := newReceiver(t)
	target, _ := n.target("support", linsync.NotifySlack, slack.URL+"/services/T0/B0/xyz")
	n.rule(map[string]any{"from_template": "issue-completed", "target_ids": []string{target}})

	ident := n.completeIssue("Export job stuck <!channel>")
	require.Eventually(t, func() bool { return len(n.sends("sent")) == 1 }, 60*time.Second, 50*time.Millisecond)
	delivery := n.sends("sent")[0]
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, n.waitDeliveryClosed(delivery))
	require.NoError(t, n.fake.Flush(t.Context()))
	got := slack.all()
	require.Len(t, got, 1, "exactly one message")
	var msg struct{ Text string }
	require.NoError(t, json.Unmarshal([]byte(got[0].body), &msg))
	require.Contains(t, msg.Text, "|"+ident+">", "the identifier, as a Slack link")
	require.Contains(t, msg.Text, "Export job stuck &lt;!channel&gt;", "the title, escaped so it pings nobody")
	require.Contains(t, msg.Text, "Done")
	require.Empty(t, got[0].header.Get("webhook-signature"), "Slack messages carry no signature")

	// The simulator renders what was sent, byte for byte.
	st, sim := n.call(http.MethodPost, "/notification-rules:simulate", map[string]any{"delivery_id": delivery})
	require.Equal(t, http.StatusOK, st, sim)
	rules := sim["rules"].([]any)
	require.Len(t, rules, 1)
	simBody, err := json.Marshal(rules[0].(map[string]any)["messages"].([]any)[0].(map[string]any)["body"])
	require.NoError(t, err)
	require.JSONEq(t, got[0].body, string(simBody), "simulate equals what is sent")

	// Linear redelivers the same body (a new Linear-Delivery): a duplicate, nothing sent.
	var body []byte
	for _, d := range n.fake.Deliveries() {
		if d.ID == delivery {
			body = d.Body
		}
	}
	require.NotNil(t, body)
	h := &harness{stack: n.stack}
	code, out := h.post(delivery2(body))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "duplicate", out["status"])

	// The delivery's workflow replayed from its start: its notifications were started before, so none again.
	wid := workflows.LinearDeliveryWorkflowID(n.wsID, delivery)
	desc, err := n.temporal.DescribeWorkflowExecution(t.Context(), wid, "")
	require.NoError(t, err)
	reset, err := n.temporal.ResetWorkflowExecution(t.Context(), &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 "default",
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: wid, RunId: desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()},
		Reason:                    "replay for the test",
		WorkflowTaskFinishEventId: firstWorkflowTaskCompleted(t, n.temporal, wid),
		RequestId:                 uuid.NewString(),
	})
	require.NoError(t, err)
	require.NoError(t, n.temporal.GetWorkflow(t.Context(), wid, reset.GetRunId()).Get(t.Context(), nil))
	// The delivery run again under another workflow ID, as Linear's event replayed once Temporal forgot the first
	// run: the send record stops it.
	run, err := n.temporal.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: "delivery-again-" + uuid.NewString(),
		TaskQueue: n.taskQueue}, workflows.TypeLinearDelivery, workflows.LinearDeliveryInput{DeliveryID: delivery,
		WorkspaceID: n.wsID, OrganizationID: n.sd.OrganizationID, EventType: "Issue", Action: "update", KnownType: true, Body: body})
	require.NoError(t, err)
	require.NoError(t, run.Get(t.Context(), nil))
	require.Len(t, slack.all(), 1, "no second message after a redelivery and two replays")
	require.Equal(t, float64(1), n.workerCounter("linsync_notifications_sent_total", "kind", "slack"))
}

// workerCounter sums a counter of the worker's registry over the series whose label has value.
func (n *notifyStack) workerCounter(name, label, value string) float64 {
	n.t.Helper()
	mfs, err := n.workerReg.Gather()
	require.NoError(n.t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// delivery2 is body signed again under a new delivery id, as Linear's redelivery of the same event.
func delivery2(body []byte) delivery {
	return delivery{path: "/webhooks/linear", body: body, id: uuid.NewString(), signature: linear.Sign([]byte(testSecret), body)}
}

func firstWorkflowTaskCompleted(t *testing.T, c client.Client, wid string) int64 {
	t.Helper()
	it := c.GetWorkflowHistory(t.Context(), wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			return ev.GetEventId()
		}
	}
	t.Fatal("no completed workflow task")
	return 0
}

// TestNotificationSLABreachedSignedWebhook: an IssueSLA "breached" delivery (Linear's real payload) fires the SLA rule;
// the generic webhook receives a signed JSON event whose webhook-id is stable per (delivery, rule, target).
func TestNotificationSLABreachedSignedWebhook(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 0)
	hook := newReceiver(t)
	hook.respond = func(_ received, seen int) (int, map[string]string) {
		if seen == 0 {
			return http.StatusInternalServerError, nil // briefly down: retried with the same webhook-id
		}
		return http.StatusNoContent, nil
	}
	target, secret := n.target("pager", linsync.NotifyWebhook, hook.URL)
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	n.rule(map[string]any{"from_template": "sla-at-risk", "target_ids": []string{target}})
	// A rule that must not fire: issue completion.
	n.rule(map[string]any{"from_template": "issue-completed", "target_ids": []string{target}})

	raw, err := os.ReadFile(linsynctest.LinearTestdata(t, "payloads", "issuesla_breached_2025_redacted.json"))
	require.NoError(t, err)
	var p map[string]any
	require.NoError(t, json.Unmarshal(raw, &p))
	p["organizationId"], p["webhookTimestamp"] = n.sd.OrganizationID, time.Now().UnixMilli()
	iss := p["issueData"].(map[string]any)
	iss["identifier"], iss["title"], iss["url"] = "SUP-77", "Checkout is down", "https://linear.app/acme/issue/SUP-77"
	body, err := json.Marshal(p)
	require.NoError(t, err)
	// Simulated first, from the pasted body: the SLA rule fires, the completion rule does not.
	st, sim := n.call(http.MethodPost, "/notification-rules:simulate", map[string]any{"delivery": json.RawMessage(body)})
	require.Equal(t, http.StatusOK, st, sim)
	require.Equal(t, float64(2), sim["rules_evaluated"])
	fired := sim["rules"].([]any)
	require.Len(t, fired, 1)
	require.Equal(t, "sla-at-risk", fired[0].(map[string]any)["rule_name"])
	simText := fired[0].(map[string]any)["messages"].([]any)[0].(map[string]any)["text"]
	h := &harness{stack: n.stack}
	d := delivery2(body)
	code, out := h.post(d)
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, n.waitDeliveryClosed(d.id))

	got := hook.all()
	require.Len(t, got, 2, "one failure, one retry")
	require.Equal(t, got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"), "a retry keeps its webhook-id")
	require.Equal(t, got[0].body, got[1].body)
	last := got[1]
	require.Equal(t, linsync.SignStandardWebhook([]byte(secret), last.header.Get("webhook-id"), last.header.Get("webhook-timestamp"),
		[]byte(last.body)), last.header.Get("webhook-signature"))
	var ev struct {
		Type  string
		Text  string
		Event linsync.NotificationEvent
	}
	require.NoError(t, json.Unmarshal([]byte(last.body), &ev))
	require.Equal(t, "linsync.notification", ev.Type)
	require.Equal(t, "IssueSLA", ev.Event.Type)
	require.Equal(t, "breached", ev.Event.Action)
	require.Contains(t, ev.Text, "SLA breached: SUP-77 (https://linear.app/acme/issue/SUP-77) *Checkout is down*")
	require.Equal(t, simText, ev.Text, "the simulated message is the one sent")
}

// TestNotificationDigestBulkMove: 50 issues moved to Done together, with a one-minute digest → one message listing
// them all. (The test's digest minute is 15 s.)
func TestNotificationDigestBulkMove(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 15*time.Second)
	slack := newReceiver(t)
	target, _ := n.target("digest", linsync.NotifySlack, slack.URL)
	rule := n.rule(map[string]any{"from_template": "issue-completed", "target_ids": []string{target}, "digest_minutes": 1})
	h := n.fake.Human(n.sd.Alice.Email)
	var ids []string
	for i := range 50 {
		id, err := h.CreateIssue(n.sd.Plain.ID, fmt.Sprintf("Bulk %02d", i))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	for _, id := range ids {
		require.NoError(t, h.SetState(id, "completed"))
	}
	require.Eventually(t, func() bool { return len(slack.all()) >= 1 }, 90*time.Second, 100*time.Millisecond)
	// The window's workflow has ended and no match waits for another window.
	require.Eventually(t, func() bool {
		desc, err := n.temporal.DescribeWorkflowExecution(t.Context(), activities.DigestWorkflowID(n.wsID, rule), "")
		return err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	}, 30*time.Second, 100*time.Millisecond)
	var left int
	require.NoError(t, n.db.Pool().QueryRow(t.Context(), `SELECT count(*) FROM notification_digest_items WHERE rule_id = $1`, rule).Scan(&left))
	require.Zero(t, left)
	got := slack.all()
	require.Len(t, got, 1, "one message for the whole bulk move")
	var msg struct{ Text string }
	require.NoError(t, json.Unmarshal([]byte(got[0].body), &msg))
	require.Contains(t, msg.Text, "50 matches of issue-completed")
	for i := range 50 {
		require.Contains(t, msg.Text, fmt.Sprintf("Bulk %02d", i))
	}
	require.Len(t, n.sends("sent"), 1, "one send record per digest window")
}

// TestNotificationRateLimitStorm: a target answering 429 with Retry-After to every message's first attempt (and 500
// to some second ones) gets every message exactly once, none before its Retry-After.
func TestNotificationRateLimitStorm(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 0)
	slack := newReceiver(t)
	slack.respond = func(r received, seen int) (int, map[string]string) {
		switch {
		case seen == 0:
			return http.StatusTooManyRequests, map[string]string{"Retry-After": "2"}
		case seen == 1 && strings.Contains(r.body, "Storm 0"):
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	}
	target, _ := n.target("storm", linsync.NotifySlack, slack.URL)
	n.rule(map[string]any{"from_template": "issue-completed", "target_ids": []string{target}})
	const issues = 6
	for i := range issues {
		n.completeIssue(fmt.Sprintf("Storm %d", i))
	}
	require.Eventually(t, func() bool { return len(n.sends("sent")) == issues }, 120*time.Second, 100*time.Millisecond)
	byBody := map[string][]received{}
	for _, r := range slack.all() {
		byBody[r.body] = append(byBody[r.body], r)
	}
	require.Len(t, byBody, issues)
	for body, rs := range byBody {
		ok := 0
		for i, r := range rs {
			if i > 0 {
				require.GreaterOrEqual(t, r.at.Sub(rs[0].at), 2*time.Second, "retried before Retry-After: %s", body)
			}
			if (i == 1 && !strings.Contains(body, "Storm 0")) || i == 2 {
				ok++
			}
		}
		require.Equal(t, 1, ok, "delivered exactly once: %s", body)
	}
}

// TestNotificationRefusedBecomesDeadLetter: a target that answers 404 is not retried; the delivery's run ends Failed
// and becomes a dead letter, whose replay (once the target is fixed) sends the message once.
func TestNotificationRefusedBecomesDeadLetter(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 0)
	slack := newReceiver(t)
	var mu sync.Mutex
	fixed := false
	slack.respond = func(received, int) (int, map[string]string) {
		mu.Lock()
		defer mu.Unlock()
		if !fixed {
			return http.StatusNotFound, nil
		}
		return http.StatusOK, nil
	}
	target, _ := n.target("gone", linsync.NotifySlack, slack.URL)
	n.rule(map[string]any{"from_template": "issue-completed", "target_ids": []string{target}})
	n.completeIssue("Refused")
	var dl map[string]any
	require.Eventually(t, func() bool {
		_, out := n.call(http.MethodGet, "/failed-events?kind="+workflows.TypeLinearDelivery, nil)
		evs, _ := out["failed_events"].([]any)
		if len(evs) == 0 {
			return false
		}
		dl = evs[0].(map[string]any)
		return true
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, activities.ErrTypeNotificationRefused, dl["error_class"])
	require.Len(t, slack.all(), 1, "a 404 is not retried")
	require.Equal(t, float64(1), n.workerCounter("linsync_notifications_failed_total", "kind", "slack"))

	mu.Lock()
	fixed = true
	mu.Unlock()
	st, out := n.call(http.MethodPost, "/failed-events/"+dl["id"].(string)+"/replay", nil)
	require.Equal(t, http.StatusOK, st, out)
	require.Eventually(t, func() bool { return len(n.sends("sent")) == 1 }, 60*time.Second, 100*time.Millisecond)
	require.Len(t, slack.all(), 2, "the replay sent it once")
}

// TestNotificationBadInput: targets on private addresses are refused when private targets are not allowed, and every
// bad rule or target is a 422 naming the field, changing nothing.
func TestNotificationBadInput(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, false, 0)
	for _, u := range []string{"http://127.0.0.1:9/x", "https://127.0.0.1/x", "https://10.1.2.3/hook", "https://[::1]/x",
		"https://localhost/x", "https://169.254.169.254/latest", "ftp://example.com/x", "https://user:pw@example.com/x", ""} {
		st, out := n.callBad(http.MethodPost, "/notification-targets", map[string]any{"name": "t", "kind": "slack", "url": u})
		require.Equal(t, http.StatusUnprocessableEntity, st, "%s: %v", u, out)
		require.Equal(t, "url", out["error"].(map[string]any)["field"], u)
	}
	st, out := n.callBad(http.MethodPost, "/notification-targets", map[string]any{"name": "t", "kind": "teams", "url": "https://example.com/x"})
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, "kind", out["error"].(map[string]any)["field"])
	target, _ := n.target("ok", linsync.NotifySlack, "https://hooks.slack.com/services/T0/B0/abcdefgh")

	rows := []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "r", "target_ids": []string{target}}, "match"},
		{map[string]any{"name": "r", "match": map[string]any{"types": []string{"Issue"}}}, "target_ids"},
		{map[string]any{"name": "r", "from_template": "nope", "target_ids": []string{target}}, "from_template"},
		{map[string]any{"name": "r", "match": map[string]any{"state_types": []string{"done"}}, "target_ids": []string{target}}, "match.state_types[0]"},
		{map[string]any{"name": "r", "match": map[string]any{"sla_actions": []string{"late"}}, "target_ids": []string{target}}, "match.sla_actions[0]"},
		{map[string]any{"name": "r", "match": map[string]any{"priority_at_least": 9}, "target_ids": []string{target}}, "match.priority_at_least"},
		{map[string]any{"name": "r", "from_template": "issue-completed", "target_ids": []string{target}, "digest_minutes": -1}, "digest_minutes"},
		{map[string]any{"name": "r", "from_template": "issue-completed", "target_ids": []string{target}, "template": "{{.Nope"}, "template"},
		{map[string]any{"name": "r", "from_template": "issue-completed", "target_ids": []string{target}, "template": "{{.Issue.Nope}}"}, "template"},
		{map[string]any{"name": "r", "from_template": "issue-completed", "target_ids": []string{uuid.NewString()}}, "target_ids"},
	}
	for _, r := range rows {
		st, out := n.callBad(http.MethodPost, "/notification-rules", r.body)
		require.Equal(t, http.StatusUnprocessableEntity, st, "%v: %v", r.body, out)
		require.Equal(t, r.field, out["error"].(map[string]any)["field"], "%v", r.body)
	}
	st, out = n.call(http.MethodGet, "/notification-rules", nil)
	require.Equal(t, http.StatusOK, st)
	require.Empty(t, out["rules"], "a refused rule changes nothing")
	st, out = n.call(http.MethodPost, "/notification-rules:simulate", map[string]any{})
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, "delivery", out["error"].(map[string]any)["field"])
	st, out = n.callBad(http.MethodPost, "/notification-rules:simulate", map[string]any{"delivery": map[string]any{"type": "Issue"}})
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, "delivery.action", out["error"].(map[string]any)["field"])
	st, _ = n.call(http.MethodGet, "/notification-targets/"+uuid.NewString(), nil)
	require.Equal(t, http.StatusNotFound, st)

	// A target a rule sends to cannot be deleted; the list shows the URL by its last four characters only.
	n.rule(map[string]any{"from_template": "issue-completed", "target_ids": []string{target}})
	st, out = n.call(http.MethodDelete, "/notification-targets/"+target, nil)
	require.Equal(t, http.StatusConflict, st, out)
	st, out = n.call(http.MethodGet, "/notification-targets", nil)
	require.Equal(t, http.StatusOK, st)
	raw, _ := json.Marshal(out)
	require.NotContains(t, string(raw), "abcdefgh")
	require.Contains(t, string(raw), "efgh")
}

// TestNotificationEchoOfOwnWrite: the issue linsync itself creates in Linear for a question comes back as a webhook
// whose actor is linsync's Linear user: a rule notifies of it only when it asks for linsync's own changes.
func TestNotificationEchoOfOwnWrite(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 0)
	slack := newReceiver(t)
	target, _ := n.target("created", linsync.NotifySlack, slack.URL)
	quiet := n.rule(map[string]any{"name": "issues created", "match": map[string]any{"types": []string{"Issue"}, "actions": []string{"create"}},
		"target_ids": []string{target}})
	loud := n.rule(map[string]any{"name": "issues created, ours too", "match": map[string]any{"types": []string{"Issue"}, "actions": []string{"create"}},
		"target_ids": []string{target}, "notify_on_own_changes": true})
	st, out := n.call(http.MethodPost, "/questions", map[string]any{"title": "Who owns billing?", "body": "…",
		"asker_email": n.sd.Alice.Email, "external_id": "echo-1"})
	require.Equal(t, http.StatusCreated, st, out)
	require.Eventually(t, func() bool { return len(n.sends("sent")) == 1 }, 60*time.Second, 50*time.Millisecond)
	delivery := n.sends("sent")[0]
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, n.waitDeliveryClosed(delivery))
	var rules []string
	rows, err := n.db.Pool().Query(t.Context(), `SELECT rule_id::text FROM notification_sends WHERE workspace_id = $1`, n.wsID)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		rules = append(rules, id)
	}
	rows.Close()
	require.Equal(t, []string{loud}, rules, "only the rule that asks for linsync's own changes; not %s", quiet)
	require.Len(t, slack.all(), 1)
	require.Contains(t, slack.all()[0].body, "Who owns billing?")
}

// TestNotificationTestMessage: a test message goes out once, signed for a webhook target, and the answer says what the
// target said.
func TestNotificationTestMessage(t *testing.T) {
	t.Parallel()
	n := newNotifyStack(t, true, 0)
	hook := newReceiver(t)
	failing := false
	var mu sync.Mutex
	hook.respond = func(received, int) (int, map[string]string) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return http.StatusInternalServerError, nil
		}
		return http.StatusAccepted, nil
	}
	target, secret := n.target("test", linsync.NotifyWebhook, hook.URL)
	st, out := n.call(http.MethodPost, "/notification-targets/"+target+":test", nil)
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, "delivered", out["status"])
	require.Equal(t, float64(http.StatusAccepted), out["http_status"])
	got := hook.all()
	require.Len(t, got, 1)
	require.Contains(t, got[0].body, "Test message from linsync to test")
	require.Equal(t, linsync.SignStandardWebhook([]byte(secret), got[0].header.Get("webhook-id"), got[0].header.Get("webhook-timestamp"),
		[]byte(got[0].body)), got[0].header.Get("webhook-signature"))

	mu.Lock()
	failing = true
	mu.Unlock()
	st, out = n.call(http.MethodPost, "/notification-targets/"+target+":test", nil)
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, "failed", out["status"])
	require.Equal(t, float64(http.StatusInternalServerError), out["http_status"])
	require.Len(t, hook.all(), 2, "sent once, not retried")

	st, _ = n.call(http.MethodPost, "/notification-targets/"+target+":nope", nil)
	require.Equal(t, http.StatusNotFound, st)
}
