package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/workflows"
)

// rHarness is the question loop of qHarness plus reconciliation: the worker also runs the Reconciler, whose
// metrics go to workerReg, the workspace's webhook is managed as connecting registers it, and the API's token is an
// admin's (sync-status is an admin route).
type rHarness struct {
	*qHarness
}

func newReconcileHarness(t *testing.T, opts lineartest.Options) *rHarness {
	t.Helper()
	opts.Now = tickingClock()
	s := newStack(t, stackOptions{linear: opts, worker: stackWorker{deliveries: true, questions: true, reconciler: true},
		workspace: "rc", workspaceName: "Reconcile", webhook: webhookManaged, connect: &stackConnection{},
		tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin}}}})
	t.Cleanup(func() { _ = workflows.DeleteReconcileSchedule(context.Background(), s.temporal, s.wsID) })
	return &rHarness{qHarness: &qHarness{stack: s, token: s.tokens["admin"], acts: s.acts.Questions}}
}

// reconcile runs the workspace's Reconcile workflow once, as its schedule would, and returns what it did.
func (h *rHarness) reconcile() workflows.ReconcileResult {
	h.t.Helper()
	return h.runReconcile(time.Minute)
}

func (h *rHarness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	switch name {
	case "linsync_webhooks_reenabled_total":
		return gatherValue(h.t, h.workerReg, name, nil)
	default:
		return gatherValue(h.t, h.workerReg, name, map[string]string{"kind": labels[0]})
	}
}

// gatherValue reads a counter from reg; 0 when it has not been recorded.
func gatherValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestReconcileRepairsDroppedWebhook: a human's edit whose webhook the fake drops leaves the question stale; one
// reconciliation run applies it through the webhook's own activity, counts and records it, and a second run finds
// nothing to repair.
func TestReconcileRepairsDroppedWebhook(t *testing.T) {
	t.Parallel()
	h := newReconcileHarness(t, lineartest.Options{})
	id := h.createQuestion(map[string]any{"title": "Where is the churn table?", "body": "Looking for it.",
		"asker_email": "asker@example.com", "priority": 3})
	issueID := issueOf(h.quiesce(id))

	h.fake.InjectDeliveryFault(lineartest.DeliveryFault{Mode: lineartest.DeliveryDrop, Count: 1})
	require.NoError(t, h.fake.Human(h.sd.Alice.Email).SetPriority(issueID, 1))
	require.NoError(t, h.fake.Flush(t.Context()))
	dropped := 0
	for _, d := range h.fake.Deliveries() {
		if d.Dropped {
			dropped++
		}
	}
	require.Equal(t, 1, dropped, "the fake dropped the edit's webhook")
	require.InDelta(t, 3, h.get(id)["priority"], 0, "the question missed the edit")

	res := h.reconcile()
	require.True(t, res.Connected)
	require.Len(t, res.Repairs, 1, "%+v", res)
	require.Equal(t, activities.DriftQuestion, res.Repairs[0].Kind)
	require.Equal(t, id, res.Repairs[0].QuestionID)
	require.Equal(t, []string{"priority"}, res.Repairs[0].Changed)
	require.InDelta(t, 1, h.get(id)["priority"], 0, "reconciliation applied the missed edit")
	require.InDelta(t, 1, h.counter("linsync_drift_repaired_total", activities.DriftQuestion), 0)

	runs, err := h.db.ListReconcileRuns(t.Context(), h.wsID, 10)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, 1, runs[0].QuestionsRepaired)
	require.False(t, runs[0].WatermarkTo.Before(runs[0].WatermarkFrom))
	evs, err := h.db.ListAccessEvents(t.Context(), h.wsID, 10)
	require.NoError(t, err)
	require.Equal(t, activities.AccessDriftRepaired, evs[0].Kind)

	// Nothing was missed since: the second run re-reads the overlap and changes nothing.
	updates := h.fake.CountRequests("IssueUpdate")
	again := h.reconcile()
	require.Empty(t, again.Repairs, "%+v", again)
	require.Equal(t, updates, h.fake.CountRequests("IssueUpdate"), "a no-op run writes nothing to Linear")
	require.InDelta(t, 1, h.counter("linsync_drift_repaired_total", activities.DriftQuestion), 0)
	wm, err := h.db.ReconcileWatermark(t.Context(), h.wsID, time.Time{})
	require.NoError(t, err)
	require.Equal(t, again.Watermark.UTC(), wm)
}

// TestReconcileReenablesDisabledWebhook: the fake disables linsync's webhook after deliveries keep failing (here,
// signed with a secret linsync does not know); reconciliation enables it again, sending only enabled: true.
func TestReconcileReenablesDisabledWebhook(t *testing.T) {
	t.Parallel()
	h := newReconcileHarness(t, lineartest.Options{DisableAfterFailures: 1, WebhookRetryDelays: []time.Duration{time.Millisecond}})
	hooks := h.fake.Webhooks()
	require.Len(t, hooks, 1)
	// A second webhook of the organization that fails every delivery; only linsync's managed one is re-enabled.
	failing := h.fake.AddWebhook(h.srv.URL+"/webhooks/linear/"+h.ws, "not-the-secret")
	_, err := h.fake.Human(h.sd.Alice.Email).CreateIssue(h.sd.Plain.ID, "noise")
	require.NoError(t, err)
	require.NoError(t, h.fake.Flush(t.Context()))
	for _, wh := range h.fake.Webhooks() {
		if wh.ID == failing {
			require.False(t, wh.Enabled, "the fake disabled the failing webhook")
		}
	}
	// Make linsync's own webhook the disabled one: point its stored record at the failing Linear webhook.
	_, err = h.db.Pool().Exec(t.Context(), `UPDATE linear_webhooks SET linear_webhook_id = $2 WHERE workspace_id = $1`, h.wsID, failing)
	require.NoError(t, err)

	res := h.reconcile()
	require.Equal(t, []string{failing}, res.Reenabled)
	for _, wh := range h.fake.Webhooks() {
		require.True(t, wh.Enabled, "webhook %s enabled again", wh.ID)
	}
	var sent []map[string]any
	for _, r := range h.fake.Requests() {
		if r.OperationName == "WebhookUpdate" {
			sent = append(sent, r.Variables)
		}
	}
	require.Equal(t, []map[string]any{{"id": failing, "input": map[string]any{"enabled": true}}}, sent)
	require.InDelta(t, 1, h.counter("linsync_webhooks_reenabled_total"), 0)
	evs, err := h.db.ListAccessEvents(t.Context(), h.wsID, 10)
	require.NoError(t, err)
	require.Equal(t, activities.AccessWebhookReenabled, evs[0].Kind)

	// Enabled now: the next run leaves it alone.
	require.Empty(t, h.reconcile().Reenabled)
	require.InDelta(t, 1, h.counter("linsync_webhooks_reenabled_total"), 0)
}

// TestSyncStatusListsFailedPushAndReconcileResyncs: a question whose issueCreate keeps failing (5xx beyond the
// attempts) is listed by sync-status as failed with its reason and attempts; once Linear answers again, a
// reconciliation run re-triggers its sync and it leaves the list.
func TestSyncStatusListsFailedPushAndReconcileResyncs(t *testing.T) {
	t.Parallel()
	h := newReconcileHarness(t, lineartest.Options{})
	// Exactly the attempts of one pass: each attempt's first request fails, so the pass fails and the faults are used up.
	h.fake.InjectStatus(http.StatusBadGateway, int(workflows.DefaultLinearMaxAttempts))
	st, out := h.do(http.MethodPost, "/questions", map[string]any{"title": "Why is revenue down?", "body": "?",
		"asker_email": "asker@example.com"})
	require.Equal(t, http.StatusCreated, st, out)
	id := out["question"].(map[string]any)["id"].(string)
	h.waitQuestion(id, "failed", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "failed" })

	st, out = h.do(http.MethodGet, "/sync-status", nil)
	require.Equal(t, http.StatusOK, st, out)
	items := out["items"].([]any)
	require.Len(t, items, 1, "%v", out)
	item := items[0].(map[string]any)
	require.Equal(t, "question", item["kind"])
	require.Equal(t, id, item["id"])
	require.Equal(t, "failed", item["state"])
	require.Contains(t, item["reason"], "create issue")
	require.InDelta(t, workflows.DefaultLinearMaxAttempts, item["attempts"], 0, "every attempt at Linear counts, not the one pass")
	require.NotNil(t, item["last_attempt_at"])
	require.Equal(t, linsync.NextActionResync, item["next_action"])
	require.NotNil(t, out["reconcile"].(map[string]any)["interval_seconds"])

	res := h.reconcile()
	require.Equal(t, 1, res.Resynced)
	h.waitQuestion(id, "synced after resync", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "synced" })
	require.Equal(t, 1, answered(h.fake, "IssueCreate"), "one issue landed")
	require.InDelta(t, 1, h.counter("linsync_drift_repaired_total", activities.DriftQuestionResync), 0)
	_, out = h.do(http.MethodGet, "/sync-status", nil)
	require.Empty(t, out["items"])
}

func answered(fake *lineartest.Server, op string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.OperationName == op && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// TestReconcileSettingAndSchedule: PUT /reconcile stores a workspace's interval and applies it to the schedule that
// connecting created; an interval below the minimum is refused with the field named.
func TestReconcileSettingAndSchedule(t *testing.T) {
	t.Parallel()
	h := newReconcileHarness(t, lineartest.Options{})
	st, out := h.do(http.MethodPut, "/reconcile", map[string]any{"interval_seconds": 30})
	require.Equal(t, http.StatusUnprocessableEntity, st, out)
	require.Equal(t, "interval_seconds", out["error"].(map[string]any)["field"])

	st, out = h.do(http.MethodPut, "/reconcile", map[string]any{"interval_seconds": 120})
	require.Equal(t, http.StatusOK, st, out)
	require.InDelta(t, 120, out["interval_seconds"], 0)
	require.Equal(t, false, out["default"])
	desc, err := h.temporal.ScheduleClient().GetHandle(t.Context(), workflows.ReconcileScheduleID(h.wsID)).Describe(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, desc.Schedule.Spec.Intervals[0].Every)

	st, out = h.do(http.MethodPut, "/reconcile", map[string]any{"interval_seconds": 0})
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, true, out["default"])
	desc, err = h.temporal.ScheduleClient().GetHandle(t.Context(), workflows.ReconcileScheduleID(h.wsID)).Describe(t.Context())
	require.NoError(t, err)
	require.Equal(t, workflows.DefaultReconcileEvery, desc.Schedule.Spec.Intervals[0].Every)

	// Disconnecting removes the schedule.
	st, out = h.do(http.MethodDelete, "/integrations/linear", nil)
	require.Equal(t, http.StatusOK, st, out)
	_, err = h.temporal.ScheduleClient().GetHandle(t.Context(), workflows.ReconcileScheduleID(h.wsID)).Describe(t.Context())
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "NotFound"), err.Error())
}
