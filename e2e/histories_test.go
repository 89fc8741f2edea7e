package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

var (
	updateHistories = flag.Bool("update-histories", false,
		"record one history of every workflow type into workflows/testdata/histories (make histories)")
	historyLabel = flag.String("history-label", time.Now().UTC().Format("2006-01-02"),
		"the name the recorded histories are kept under, <Type>/<label>.json, beside those of earlier versions")
)

// TestRecordWorkflowHistories records, from the current code on the real stack, one history of every workflow type
// linsync registers (workflows.All) into workflows/testdata/histories/<Type>/<label>.json, beside the histories of
// earlier versions, which workflows' TestReplayRecordedHistories all replays on every `make test`: a change to a
// workflow that would break executions still running then fails CI. It only runs with -update-histories (`make
// histories`); record after a deliberate, versioned change (see the README, "Changing a workflow safely").
func TestRecordWorkflowHistories(t *testing.T) {
	if !*updateHistories {
		t.Skip("records histories only with -update-histories (make histories)")
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(app.Close)
	all := everyCapability
	all.reconciler, all.gateway = true, true
	// Payloads are sealed, as in production, with the test key kept beside the histories, which the replay uses.
	dir := filepath.Join(linsynctest.RepoRoot(t), "workflows", "testdata", "histories")
	keyURL, err := os.ReadFile(filepath.Join(dir, "codec.keyurl"))
	require.NoError(t, err)
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: 5 * time.Second, AllowPrivateNotifications: true},
		worker: all, workspace: "ops", digestUnit: 2 * time.Second,
		codecKeyURL: strings.TrimSpace(string(keyURL)),
		webhook:     webhookStored, connect: &stackConnection{orgName: "Fake"}, deliver: true,
		tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin}}}})
	h := &fHarness{stack: s, admin: s.tokens["admin"], token: s.tokens["admin"]}
	ctx := t.Context()
	recorded := map[string]*historypb.History{}
	record := func(typ, id string) { // each scenario settles before the next begins
		t.Helper()
		recorded[typ] = waitHistory(t, s, id, typ)
		t.Logf("recorded %s: %d events of %s", typ, len(recorded[typ].Events), id)
	}

	// A question (QuestionSync), changed in Linear: the delivery (LinearDelivery) applies it and tells the app
	// (NotifyQuestionApp).
	code, out := h.call(http.MethodPut, "/question-settings", h.admin, map[string]any{"callback_url": app.URL, "callback_secret": "app-secret"})
	require.Equal(t, http.StatusOK, code, "%v", out)
	code, out = h.call(http.MethodPost, "/questions", h.admin, map[string]any{"title": "Where is the revenue table?",
		"asker_email": s.sd.Alice.Email, "external_id": "hist-1"})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	q := out["question"].(map[string]any)
	qid := q["id"].(string)
	var issueID string
	require.Eventually(t, func() bool {
		_, out = h.call(http.MethodGet, "/questions/"+qid, h.admin, nil)
		l, _ := out["question"].(map[string]any)["linear"].(map[string]any)
		issueID, _ = l["issue_id"].(string)
		return issueID != ""
	}, 30*time.Second, 100*time.Millisecond)
	before := len(s.fake.Deliveries())
	require.NoError(t, s.fake.Human(s.sd.Alice.Email).SetPriority(issueID, 1))
	require.NoError(t, s.fake.Flush(ctx))
	var delivery lineartest.Delivery
	for _, d := range s.fake.Deliveries()[before:] {
		if d.Status == http.StatusOK {
			delivery = d
		}
	}
	require.NotEmpty(t, delivery.ID)
	record(workflows.TypeLinearDelivery, workflows.LinearDeliveryWorkflowID(s.wsID, delivery.ID))
	record(workflows.TypeNotifyQuestionApp, workflows.QuestionCallbackWorkflowID(s.wsID, delivery.ID))
	record(workflows.TypeQuestionSync, workflows.QuestionWorkflowID(s.wsID, qid))
	record(workflows.TypeQuestionPush, workflows.QuestionPushWorkflowID(s.wsID, qid))

	// Notifications: the issue completed in Linear goes to a signed webhook (the LinearDelivery recorded is this
	// one, which sends); its assignment to a rule with a digest window (NotificationDigest).
	code, out = h.call(http.MethodPost, "/notification-targets", h.admin, map[string]any{"name": "hist", "kind": "webhook", "url": app.URL})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	target := out["target"].(map[string]any)["id"].(string)
	code, out = h.call(http.MethodPost, "/notification-rules", h.admin, map[string]any{"from_template": "issue-completed",
		"target_ids": []string{target}})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	code, out = h.call(http.MethodPost, "/notification-rules", h.admin, map[string]any{"from_template": "issue-assigned",
		"target_ids": []string{target}, "digest_minutes": 1})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	digestRule := out["rule"].(map[string]any)["id"].(string)
	before = len(s.fake.Deliveries())
	require.NoError(t, s.fake.Human(s.sd.Alice.Email).SetState(issueID, "completed"))
	require.NoError(t, s.fake.Human(s.sd.Alice.Email).SetAssignee(issueID, s.sd.Bob.Email))
	require.NoError(t, s.fake.Flush(ctx))
	var completed string
	for _, d := range s.fake.Deliveries()[before:] {
		var b struct {
			UpdatedFrom map[string]any `json:"updatedFrom"`
		}
		_ = json.Unmarshal(d.Body, &b)
		if _, ok := b.UpdatedFrom["stateId"]; ok && d.Status == http.StatusOK {
			completed = d.ID
		}
	}
	require.NotEmpty(t, completed)
	record(workflows.TypeLinearDelivery, workflows.LinearDeliveryWorkflowID(s.wsID, completed))
	record(workflows.TypeNotificationDigest, activities.DigestWorkflowID(s.wsID, digestRule))

	// An event filed as an issue (FileEvent), and a broken link handed to its host's aggregator (IssueAggregator).
	code, out = h.call(http.MethodPut, "/event-settings", h.admin, map[string]any{"debounce_ms": 200})
	require.Equal(t, http.StatusOK, code, "%v", out)
	record(workflows.TypeFileEvent, h.postEvent(takeoverEvent("hist-tk", "hist.example.com")))
	h.postEvent(brokenEvent("hist-bl", "links.example.com", "spring", "http_5xx", "paid"))
	record(workflows.TypeIssueAggregator, workflows.HostAggregatorID(s.wsID, "links.example.com"))

	// A dead letter (a takeover Linear refuses for good), replayed in bulk (ReplayDeadLetters).
	s.fake.InjectStatus(http.StatusForbidden, 1)
	failed := h.postEvent(takeoverEvent("hist-tk-2", "hist2.example.com"))
	h.waitFailed(failed)
	h.waitDeadLetters(workflows.TypeFileEvent, 1)
	code, out = h.call(http.MethodPost, "/failed-events:replay", h.admin, map[string]any{"kind": workflows.TypeFileEvent})
	require.Equal(t, http.StatusAccepted, code, "%v", out)
	record(workflows.TypeReplayDeadLetters, out["replay_workflow_id"].(string))

	// An agent's delete held for approval (GatewayApproval), approved and forwarded.
	code, out = h.call(http.MethodPost, "/gateway/agent-keys", h.admin, map[string]any{"name": "history-bot"})
	require.Equal(t, http.StatusCreated, code, "%v", out)
	agentKey := out["key"].(string)
	resp, raw := s.request(http.DefaultClient, http.MethodPost, "/v1/workspaces/"+s.ws+"/proxy/linear/graphql",
		deleteIssue("RemoveIt", issueID), "Content-Type", "application/json", "Authorization", "Bearer "+agentKey,
		"X-Agent-Id", "history")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", raw)
	var held map[string]any
	require.NoError(t, json.Unmarshal(raw, &held))
	approvalID := held["approval_id"].(string)
	code, out = h.call(http.MethodPost, "/gateway/approvals/"+approvalID+"/approve", h.admin,
		map[string]any{"request_hash": held["request_hash"]})
	require.Equal(t, http.StatusOK, code, "%v", out)
	record(workflows.TypeGatewayApproval, workflows.GatewayApprovalWorkflowID(s.wsID, approvalID))

	// Reconciliation (Reconcile), as its schedule runs it.
	reconcileID := workflows.ReconcileWorkflowID(s.wsID) + ":history"
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: reconcileID, TaskQueue: s.taskQueue},
		workflows.Reconcile, workflows.ReconcileInput{WorkspaceID: s.wsID})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	record(workflows.TypeReconcile, reconcileID)

	for typ := range workflows.All() {
		require.Contains(t, recorded, typ, "no scenario records %s", typ)
	}
	for typ, h := range recorded {
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, typ), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, typ, *historyLabel+".json"), append(b, '\n'), 0o644))
	}
}

// waitHistory returns the history of the workflow's latest run once it has closed, or, for the long-lived ones
// (a question's workflow waits for changes, an aggregator for its window), once it has done its work and waits.
func waitHistory(t *testing.T, s *stack, id, typ string) *historypb.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	longLived := typ == workflows.TypeQuestionSync || typ == workflows.TypeIssueAggregator
	var h *historypb.History
	require.Eventually(t, func() bool {
		desc, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false
		}
		info := desc.GetWorkflowExecutionInfo()
		closed := info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		idle := longLived && len(desc.GetPendingActivities()) == 0 && desc.GetPendingWorkflowTask() == nil
		if !closed && !idle {
			return false
		}
		h = &historypb.History{}
		it := s.temporal.GetWorkflowHistory(ctx, id, info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return false
			}
			h.Events = append(h.Events, e)
		}
		// A long-lived run is recorded once it has written to Linear (an activity completed) and waits again.
		if longLived && !closed {
			done := 0
			for _, e := range h.Events {
				if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED {
					done++
				}
			}
			return done >= 2
		}
		return true
	}, 50*time.Second, 200*time.Millisecond, "%s (%s) did not settle", id, typ)
	return h
}
