package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// TestQuestionPushFailureIsADeadLetter: a question whose push fails for good (Linear refuses the key) is recorded
// with every other failure; once the fault is cleared, a replay pushes it exactly once, and replaying again writes
// nothing.
func TestQuestionPushFailureIsADeadLetter(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	_, admin, err := h.db.CreateToken(t.Context(), h.wsID, "ops", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	asAdmin := func(method, path string) (int, map[string]any) {
		t.Helper()
		tok := h.token
		h.token = admin
		defer func() { h.token = tok }()
		return h.do(method, path, nil)
	}

	h.fake.ForbidKey(h.sd.APIKey) // the key's user lost access: a refusal no retry fixes (a dead key pauses instead)
	st, out := h.do(http.MethodPost, "/questions", map[string]any{"title": "Where is churn computed?", "body": "…",
		"asker_email": h.sd.Alice.Email, "external_id": "dl-1"})
	require.Equal(t, http.StatusCreated, st, out)
	id := out["question"].(map[string]any)["id"].(string)
	h.waitQuestion(id, "failed", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "failed" })

	var dl map[string]any
	require.Eventually(t, func() bool {
		st, out = asAdmin(http.MethodGet, "/failed-events?kind=QuestionPush")
		list, _ := out["failed_events"].([]any)
		if st != 200 || len(list) != 1 {
			return false
		}
		dl = list[0].(map[string]any)
		return true
	}, 10*time.Second, 100*time.Millisecond, "the failed push is a dead letter")
	require.Equal(t, "LinearForbidden", dl["error_class"])
	require.Contains(t, dl["error_message"], "create issue")
	dlID := dl["id"].(string)
	// The push's own run ended Failed, where operators look; the question's entity workflow did not fail, so it
	// keeps the question's order.
	push := workflows.QuestionPushWorkflowID(h.wsID, id)
	require.Equal(t, push, dl["workflow_id"])
	desc, err := h.temporal.DescribeWorkflowExecution(t.Context(), push, "")
	require.NoError(t, err, "the push ran as a workflow of its own")
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.GetWorkflowExecutionInfo().GetStatus())
	require.Equal(t, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), dl["run_id"])
	require.Contains(t, dl["temporal_ui_url"], push)
	entity, err := h.temporal.DescribeWorkflowExecution(t.Context(), workflows.QuestionWorkflowID(h.wsID, id), "")
	require.NoError(t, err)
	require.NotEqual(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, entity.GetWorkflowExecutionInfo().GetStatus())

	_, out = asAdmin(http.MethodPost, "/failed-events/"+dlID+"/replay?dry_run=true")
	plan := out["plan"].([]any)[0].(map[string]any)
	require.Equal(t, true, plan["would_replay"], plan)
	writes := writesOf(t, plan)
	require.Equal(t, "issueCreate", writes["issue"], "the issue is not created yet: %v", plan["writes"])
	require.Equal(t, "Where is churn computed?", writes["title"])
	require.Empty(t, plan["since_failure"])

	// The app edits the title after the failure: the dry run says what changed since, and writes the new title.
	st, out = h.do(http.MethodPatch, "/questions/"+id, map[string]any{"title": "Where is churn computed, and how?"})
	require.Equal(t, http.StatusOK, st, out)
	_, out = asAdmin(http.MethodPost, "/failed-events/"+dlID+"/replay?dry_run=true")
	plan = out["plan"].([]any)[0].(map[string]any)
	require.Equal(t, "Where is churn computed, and how?", writesOf(t, plan)["title"])
	since := sinceOf(t, plan)
	require.Equal(t, "Where is churn computed, and how?", since["title"]["now"])
	require.Equal(t, "app", since["title"]["by"])

	h.fake.AllowKey(h.sd.APIKey) // the fault is cleared
	st, out = asAdmin(http.MethodPost, "/failed-events/"+dlID+"/replay")
	require.Equal(t, 200, st, out)
	require.Equal(t, "resync_requested", out["result"].(map[string]any)["outcome"])
	h.waitQuestion(id, "synced", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "synced" })
	h.quiesce(id)
	require.Equal(t, 1, h.writes()["IssueCreate"], "the issue is created once")

	_, out = asAdmin(http.MethodPost, "/failed-events/"+dlID+"/replay?dry_run=true")
	require.Equal(t, false, out["plan"].([]any)[0].(map[string]any)["would_replay"], "synced since: nothing to write")
	require.Empty(t, out["plan"].([]any)[0].(map[string]any)["writes"])
	st, _ = asAdmin(http.MethodPost, "/failed-events/"+dlID+"/replay")
	require.Equal(t, 200, st)
	h.quiesce(id)
	require.Equal(t, 1, h.writes()["IssueCreate"], "replaying again writes nothing")
	require.Zero(t, h.writes()["IssueUpdate"])
}
