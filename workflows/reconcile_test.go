package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/linsync/linsync/activities"
)

func TestReconcileIDs(t *testing.T) {
	t.Parallel()
	cases := []struct{ ws, workflow, schedule string }{
		{"w1", "reconcile:w1", "reconcile:w1"},
		{"5a1b0000-0000-4000-8000-000000000001", "reconcile:5a1b0000-0000-4000-8000-000000000001",
			"reconcile:5a1b0000-0000-4000-8000-000000000001"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.workflow, ReconcileWorkflowID(tc.ws))
		require.Equal(t, tc.schedule, ReconcileScheduleID(tc.ws))
	}
	at := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	require.Equal(t, "reconcile:i1:"+"1795341600123", ReconcileDeliveryID("i1", at))
}

// reconcileEnv is a test environment with every activity Reconcile calls registered (mocks replace them).
func reconcileEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Reconciler{})
	env.RegisterActivity(&activities.Questions{})
	return env
}

// TestReconcilePagesAndAdvancesWatermarkAfterApplying: two pages are fetched with the cursor and the same since
// (watermark minus the overlap); each linked issue goes through the question sync's webhook activity, a filed one
// through the repair; the watermark reported to FinishReconcile is the newest updatedAt seen, and only changed
// questions count as repairs.
func TestReconcilePagesAndAdvancesWatermarkAfterApplying(t *testing.T) {
	t.Parallel()
	env := reconcileEnv(t)
	var r *activities.Reconciler
	var q *activities.Questions
	wm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	newest := wm.Add(30 * time.Minute)
	env.OnActivity(r.BeginReconcile, mock.Anything, "ws").Return(&activities.ReconcileStart{Connected: true, Watermark: wm}, nil)
	env.OnActivity(r.CheckWebhooks, mock.Anything, "ws").Return(&activities.WebhookCheck{Checked: 1}, nil)
	var pages []activities.ReconcilePageInput
	env.OnActivity(r.ChangedIssues, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReconcilePageInput) (*activities.ReconcilePage, error) {
			pages = append(pages, in)
			if in.After == "" {
				return &activities.ReconcilePage{Seen: 50, Newest: newest, Next: "cursor-1", Issues: []activities.ReconcileIssue{
					{IssueID: "i1", Question: true, Body: json.RawMessage(`{"type":"Issue"}`), UpdatedAt: newest},
					{IssueID: "i2", Question: true, Body: json.RawMessage(`{"type":"Issue"}`), UpdatedAt: newest.Add(-time.Minute)},
				}}, nil
			}
			return &activities.ReconcilePage{Seen: 3, Newest: wm.Add(time.Minute), Issues: []activities.ReconcileIssue{
				{IssueID: "f1", Filed: true, Identifier: "ENG-9", URL: "https://linear.app/x/ENG-9", UpdatedAt: wm.Add(time.Minute)},
			}}, nil
		})
	env.OnActivity(q.ApplyLinearIssue, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ch activities.LinearChange) (*activities.LinearChangeResult, error) {
			if ch.DeliveryID == ReconcileDeliveryID("i1", newest) {
				return &activities.LinearChangeResult{QuestionID: "q1", Changed: []string{"priority"}, NeedsPush: true}, nil
			}
			return &activities.LinearChangeResult{QuestionID: "q2"}, nil // nothing missed: a no-op
		})
	// Comments come after the issues, from the same since, through the comment webhook's activity: a missed comment
	// (its create changes the question), and one edited (create known already, the update a no-op).
	commentAt := newest.Add(time.Minute)
	var commentPages []activities.ReconcilePageInput
	env.OnActivity(r.ChangedComments, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReconcilePageInput) (*activities.ReconcileCommentPage, error) {
			commentPages = append(commentPages, in)
			return &activities.ReconcileCommentPage{Seen: 4, Newest: commentAt, Comments: []activities.ReconcileComment{
				{CommentID: "c1", IssueID: "i1", UpdatedAt: commentAt, Bodies: []json.RawMessage{json.RawMessage(`{"action":"create"}`)}},
				{CommentID: "c2", IssueID: "i2", UpdatedAt: newest, Bodies: []json.RawMessage{
					json.RawMessage(`{"action":"create"}`), json.RawMessage(`{"action":"update"}`)}},
			}}, nil
		})
	var applied []string
	env.OnActivity(q.ApplyLinearComment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ch activities.LinearChange) (*activities.LinearChangeResult, error) {
			applied = append(applied, ch.DeliveryID)
			if ch.DeliveryID == ReconcileDeliveryID("c1", commentAt)+":0" {
				return &activities.LinearChangeResult{QuestionID: "q1", Changed: []string{"replies"}}, nil
			}
			return &activities.LinearChangeResult{QuestionID: "q2"}, nil
		})
	env.OnActivity(q.RequestSync, mock.Anything, activities.QuestionRef{WorkspaceID: "ws", QuestionID: "q1"}).Return(nil).Once()
	env.OnActivity(q.NotifyApp, mock.Anything, mock.Anything).Return(nil).Twice()
	env.OnActivity(r.RepairFiledIssue, mock.Anything, activities.FiledRepair{WorkspaceID: "ws", IssueID: "f1",
		Identifier: "ENG-9", URL: "https://linear.app/x/ENG-9"}).Return(true, nil)
	env.OnActivity(r.QuestionsToResync, mock.Anything, "ws").Return([]string{"q7"}, nil)
	env.OnActivity(q.ResyncQuestion, mock.Anything, "ws", "q7").Return(nil).Once()
	var report activities.ReconcileReport
	env.OnActivity(r.FinishReconcile, mock.Anything, mock.Anything).Return(func(_ context.Context, rep activities.ReconcileReport) error {
		report = rep
		return nil
	}).Once()

	env.ExecuteWorkflow(Reconcile, ReconcileInput{WorkspaceID: "ws"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []activities.ReconcilePageInput{
		{WorkspaceID: "ws", Since: wm.Add(-reconcileOverlap)},
		{WorkspaceID: "ws", Since: wm.Add(-reconcileOverlap), After: "cursor-1"},
	}, pages)
	require.Equal(t, []activities.ReconcilePageInput{{WorkspaceID: "ws", Since: wm.Add(-reconcileOverlap)}}, commentPages,
		"comments from the start, not from the issues' cursor")
	require.Equal(t, []string{ReconcileDeliveryID("c1", commentAt) + ":0", ReconcileDeliveryID("c2", newest) + ":0",
		ReconcileDeliveryID("c2", newest) + ":1"}, applied)
	require.Equal(t, wm, report.WatermarkFrom)
	require.Equal(t, commentAt, report.WatermarkTo, "the newest updatedAt of any page, issues' or comments'")
	require.Equal(t, 53, report.IssuesSeen)
	require.Equal(t, 1, report.Resynced)
	require.Len(t, report.Repairs, 3)
	require.Equal(t, activities.DriftQuestion, report.Repairs[0].Kind)
	require.Equal(t, "q1", report.Repairs[0].QuestionID)
	require.Equal(t, activities.DriftFiledIssue, report.Repairs[1].Kind)
	require.Equal(t, activities.DriftComment, report.Repairs[2].Kind)
	require.Equal(t, "i1", report.Repairs[2].IssueID, "the comment's issue")
	var res ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, commentAt, res.Watermark)
	env.AssertExpectations(t)
}

// TestReconcileKeepsWatermarkWhenApplyFails: when applying an issue fails for good, the run fails before
// FinishReconcile, so the watermark stays and the next run lists the same changes again.
func TestReconcileKeepsWatermarkWhenApplyFails(t *testing.T) {
	t.Parallel()
	env := reconcileEnv(t)
	var r *activities.Reconciler
	var q *activities.Questions
	wm := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	env.OnActivity(r.BeginReconcile, mock.Anything, "ws").Return(&activities.ReconcileStart{Connected: true, Watermark: wm}, nil)
	env.OnActivity(r.CheckWebhooks, mock.Anything, "ws").Return(&activities.WebhookCheck{}, nil)
	env.OnActivity(r.ChangedIssues, mock.Anything, mock.Anything).Return(&activities.ReconcilePage{Seen: 1,
		Newest: wm.Add(time.Hour), Issues: []activities.ReconcileIssue{{IssueID: "i1", Question: true, Body: json.RawMessage(`{}`)}}}, nil)
	env.OnActivity(q.ApplyLinearIssue, mock.Anything, mock.Anything).Return(nil,
		temporal.NewNonRetryableApplicationError("bad", "Test", errors.New("store down")))
	finished := false
	env.OnActivity(r.FinishReconcile, mock.Anything, mock.Anything).Return(func(_ context.Context, _ activities.ReconcileReport) error {
		finished = true
		return nil
	}).Maybe()

	env.ExecuteWorkflow(Reconcile, ReconcileInput{WorkspaceID: "ws"})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	require.False(t, finished, "the watermark must not move past changes that were not applied")
}

// TestReconcileDisconnectedDeletesSchedule: a run for a workspace no longer connected removes its own schedule and
// touches neither Linear nor the watermark.
func TestReconcileDisconnectedDeletesSchedule(t *testing.T) {
	t.Parallel()
	env := reconcileEnv(t)
	var r *activities.Reconciler
	env.OnActivity(r.BeginReconcile, mock.Anything, "ws").Return(&activities.ReconcileStart{}, nil)
	env.OnActivity(r.DeleteSchedule, mock.Anything, ReconcileScheduleID("ws")).Return(nil).Once()

	env.ExecuteWorkflow(Reconcile, ReconcileInput{WorkspaceID: "ws"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	var res ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.False(t, res.Connected)
}
