package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// QuestionSyncSignal is the signal that tells a question's workflow something is waiting to be written to Linear.
const QuestionSyncSignal = "question-sync"

// questionIdle is how long a question's workflow waits for another change before it ends; the next change
// starts it again (signal-with-start), so an idle question costs nothing.
const questionIdle = 10 * time.Minute

// QuestionWorkflowID is the ID of a question's entity workflow: one per question, so every write to Linear for
// the question happens in order, one at a time.
func QuestionWorkflowID(workspaceID, questionID string) string {
	return "question:" + workspaceID + ":" + questionID
}

// QuestionSyncInput starts (or continues) a question's workflow.
type QuestionSyncInput struct {
	WorkspaceID string `json:"workspace_id"`
	QuestionID  string `json:"question_id"`
	// Pending carries a request received before a continue-as-new, so none is lost.
	Pending bool `json:"pending"`
	// LinearMaxAttempts bounds the attempts of each call to Linear (0: DefaultLinearMaxAttempts).
	LinearMaxAttempts int32 `json:"linear_max_attempts,omitempty"`
}

// QuestionSyncRequest is the payload of QuestionSyncSignal; the work itself is read from Postgres, so requests
// coalesce.
type QuestionSyncRequest struct {
	Reason string `json:"reason"`
}

// QuestionSync is a question's entity workflow. Each signal means "the question changed"; the workflow drains
// every signal waiting, then writes what Postgres says Linear lacks (issue, fields, replies, archive note), one step
// at a time, and waits again. It ends after questionIdle without signals and continues as new when history grows,
// draining signals first so none is lost.
func QuestionSync(ctx workflow.Context, in QuestionSyncInput) error {
	ch := workflow.GetSignalChannel(ctx, QuestionSyncSignal)
	pending := in.Pending
	for {
		if !pending {
			pending = waitSignal(ctx, ch, questionIdle)
			if !pending {
				return nil
			}
		}
		drainSignals(ctx, ch)
		pending = false
		syncQuestion(ctx, activities.QuestionRef{WorkspaceID: in.WorkspaceID, QuestionID: in.QuestionID}, in.LinearMaxAttempts)
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in.Pending = drainSignals(ctx, ch) > 0
			return workflow.NewContinueAsNewError(ctx, QuestionSync, in)
		}
	}
}

// waitSignal waits up to idle for a signal and reports whether one came (it is left in the channel).
func waitSignal(ctx workflow.Context, ch workflow.ReceiveChannel, idle time.Duration) bool {
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	got := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(ch, func(workflow.ReceiveChannel, bool) { got = true })
	sel.AddFuture(workflow.NewTimer(timerCtx, idle), func(workflow.Future) {})
	sel.Select(ctx)
	return got || ch.Len() > 0
}

// drainSignals consumes every signal waiting and returns how many there were.
func drainSignals(ctx workflow.Context, ch workflow.ReceiveChannel) int {
	n := 0
	for {
		var req QuestionSyncRequest
		if !ch.ReceiveAsync(&req) {
			return n
		}
		n++
	}
}

// syncQuestion runs one pass. Its writes to Linear run as a child workflow, QuestionPush, one at a time: a push
// that still fails after its retries ends that run Failed (where operators look: the Temporal UI, and a
// QuestionPush dead letter recorded by the interceptor), marks the question failed with the reason and leaves the
// rest for the next change; the entity workflow itself never fails, so the question keeps its ordering.
func syncQuestion(ctx workflow.Context, ref activities.QuestionRef, linearAttempts int32) {
	var a *activities.Questions
	// Runs begun before pushes were child workflows keep their steps, so their histories replay.
	childPush := workflow.GetVersion(ctx, "question-push-child", workflow.DefaultVersion, 1) == 1
	fail := func(step string, err error) {
		reason := fmt.Sprintf("%s: %v", step, err)
		if step == "" {
			reason = err.Error()
		}
		workflow.GetLogger(ctx).Warn("question sync failed", "question_id", ref.QuestionID, "step", step, "err", err)
		class, attempts := FailureClass(err)
		_ = workflow.ExecuteActivity(storeContext(ctx), a.MarkSyncFailed, ref, reason, attempts).Get(ctx, nil)
		if childPush {
			return // the failed QuestionPush run is the dead letter
		}
		_ = workflow.ExecuteActivity(storeContext(ctx), a.RecordSyncFailure, ref,
			activities.SyncFailure{Reason: reason, ErrorClass: class, Attempts: attempts}).Get(ctx, nil)
	}
	// A Linear change applied meanwhile can leave new work (a newer app edit to write back), so a pass repeats
	// while there is work, a bounded number of times.
	for range 3 {
		var w linsync.SyncWork
		if err := workflow.ExecuteActivity(storeContext(ctx), a.QuestionSyncWork, ref).Get(ctx, &w); err != nil {
			fail("read question", err)
			return
		}
		if w.Empty() {
			break
		}
		in := QuestionPushInput{WorkspaceID: ref.WorkspaceID, QuestionID: ref.QuestionID, Work: w, LinearMaxAttempts: linearAttempts}
		if !childPush {
			if step, err := pushQuestion(ctx, in); err != nil {
				fail(step, err)
				return
			}
			continue
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: QuestionPushWorkflowID(ref.WorkspaceID, ref.QuestionID),
			// Retried by its activities' policy; a second run of the same push would only repeat its failure.
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		if err := workflow.ExecuteChildWorkflow(cctx, QuestionPush, in).Get(ctx, nil); err != nil {
			// The push's own failure ("update issue: …") is the reason; the child-workflow wrapper adds nothing.
			if cause := errors.Unwrap(err); cause != nil {
				err = cause
			}
			fail("", err)
			return
		}
	}
	if err := workflow.ExecuteActivity(storeContext(ctx), a.FinishSync, ref).Get(ctx, nil); err != nil {
		fail("finish sync", err)
	}
}

// QuestionPushWorkflowID is the ID of a question's push to Linear: one per question, reused by each push (they run
// one at a time, from the question's entity workflow), so a question has at most one QuestionPush dead letter,
// updated by each push that fails for good.
func QuestionPushWorkflowID(workspaceID, questionID string) string {
	return "question-push:" + workspaceID + ":" + questionID
}

// QuestionPushInput is one push of a question's changes to Linear: what Postgres said Linear lacks. Its
// workspace_id and question_id are what a QuestionPush dead letter's replay reads (activities.QuestionRef).
type QuestionPushInput struct {
	WorkspaceID string           `json:"workspace_id"`
	QuestionID  string           `json:"question_id"`
	Work        linsync.SyncWork `json:"work"`
	// LinearMaxAttempts bounds the attempts of each call to Linear (0: DefaultLinearMaxAttempts).
	LinearMaxAttempts int32 `json:"linear_max_attempts,omitempty"`
}

// QuestionPush writes one pass of a question's changes to Linear (issue, fields, replies, archive note), in order.
// A step that fails for good fails the run, so it ends Failed in the Temporal UI and becomes a dead letter; its
// replay asks the question's entity workflow to push again (activities.DeadLetters.ReplayDeadLetter).
func QuestionPush(ctx workflow.Context, in QuestionPushInput) error {
	if step, err := pushQuestion(ctx, in); err != nil {
		// An error a workflow returns reaches its parent as its message only, unless it is an application error:
		// keep the failure's class and its attempts at Linear, which the question's workflow records.
		class, attempts := FailureClass(err)
		d := activities.FailureDetails{Attempt: int32(attempts)}
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.HasDetails() {
			_ = app.Details(&d)
		}
		return temporal.NewNonRetryableApplicationError(step+": "+err.Error(), class, nil, d)
	}
	return nil
}

// pushQuestion runs the Linear steps of one push and names the step that failed.
func pushQuestion(ctx workflow.Context, in QuestionPushInput) (string, error) {
	var a *activities.Questions
	ref := activities.QuestionRef{WorkspaceID: in.WorkspaceID, QuestionID: in.QuestionID}
	lctx := linearContext(ctx, 30*time.Second, in.LinearMaxAttempts)
	w := in.Work
	if w.NeedIssue {
		if err := callLinear(ctx, lctx, ref.WorkspaceID, nil, a.EnsureIssue, ref); err != nil {
			return "create issue", err
		}
	}
	if w.NeedPush || w.NeedIssue {
		if err := callLinear(ctx, lctx, ref.WorkspaceID, nil, a.PushFields, ref); err != nil {
			return "update issue", err
		}
	}
	for _, id := range w.PendingReplies {
		r := activities.ReplyRef{WorkspaceID: ref.WorkspaceID, QuestionID: ref.QuestionID, ReplyID: id}
		if err := callLinear(ctx, lctx, ref.WorkspaceID, nil, a.PushReply, r); err != nil {
			return "create comment", err
		}
	}
	if w.NeedArchive {
		if err := callLinear(ctx, lctx, ref.WorkspaceID, nil, a.ArchiveOnLinear, ref); err != nil {
			return "archive note", err
		}
	}
	return "", nil
}

// callbackContext is the activity context of callbacks to the app: retried for about an hour, then given up (the
// app can always read the question).
func callbackContext(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
			MaximumAttempts:    12,
		},
	})
}

// QuestionCallbackWorkflowID is the workflow ID of the callback that tells the app about one Linear delivery to a
// workspace.
func QuestionCallbackWorkflowID(workspaceID, deliveryID string) string {
	return "question-callback:" + workspaceID + ":" + deliveryID
}

// NotifyQuestionApp tells the Q&A app that a question changed because of Linear, retrying for about an hour.
func NotifyQuestionApp(ctx workflow.Context, n activities.Notification) error {
	var a *activities.Questions
	return workflow.ExecuteActivity(callbackContext(ctx), a.NotifyApp, n).Get(ctx, nil)
}

func questionIssueDelivery(ctx workflow.Context, in LinearDeliveryInput) (string, string, error) {
	var a *activities.Questions
	return applyQuestionChange(ctx, in, a.ApplyLinearIssue)
}

func questionCommentDelivery(ctx workflow.Context, in LinearDeliveryInput) (string, string, error) {
	var a *activities.Questions
	return applyQuestionChange(ctx, in, a.ApplyLinearComment)
}

// applyQuestionChange applies a Linear change to its question (no Linear request), asks the question's workflow to
// write back an app edit the change must not overwrite, and tells the app what changed.
func applyQuestionChange(ctx workflow.Context, in LinearDeliveryInput, apply any) (string, string, error) {
	var a *activities.Questions
	ch := activities.LinearChange{WorkspaceID: in.WorkspaceID, DeliveryID: in.DeliveryID, Body: in.Body}
	var res activities.LinearChangeResult
	if err := workflow.ExecuteActivity(storeContext(ctx), apply, ch).Get(ctx, &res); err != nil {
		return "", "", err
	}
	ref := activities.QuestionRef{WorkspaceID: in.WorkspaceID, QuestionID: res.QuestionID}
	if res.NeedsPush {
		if err := workflow.ExecuteActivity(storeContext(ctx), a.RequestSync, ref).Get(ctx, nil); err != nil {
			return "", "", err
		}
	}
	if len(res.Changed) > 0 {
		n := activities.Notification{WorkspaceID: in.WorkspaceID, QuestionID: res.QuestionID, ExternalID: res.ExternalID,
			DeliveryID: in.DeliveryID, Changed: res.Changed}
		// The callback runs as a workflow of its own, left running when the delivery ends: a slow or unreachable app
		// must not hold the delivery (and its record) for the hour its retries may take. A failed callback becomes a
		// dead letter like any other failure.
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        QuestionCallbackWorkflowID(in.WorkspaceID, in.DeliveryID),
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		})
		child := workflow.ExecuteChildWorkflow(cctx, NotifyQuestionApp, n)
		if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			// The change is applied; an app that was not told reads it later. Say so on the delivery.
			return res.Outcome, res.Detail + "; callback not started: " + err.Error(), nil
		}
	}
	if res.Outcome == "" {
		res.Outcome = linsync.OutcomeProcessed
	}
	return res.Outcome, res.Detail, nil
}
