package workflows

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
)

// ReconcileWorkflowID is the workflow ID of a workspace's reconciliation. Runs started by the schedule get it with
// the schedule's timestamp appended; the schedule skips a run while the previous one is still going.
func ReconcileWorkflowID(workspaceID string) string { return "reconcile:" + workspaceID }

// reconcileOverlap is how far before its watermark a run looks again: a change Linear committed with an updatedAt a
// little before the newest one the last run saw would otherwise be skipped. Re-applying is a no-op.
const reconcileOverlap = time.Minute

// ReconcileInput starts a workspace's reconciliation. Progress is set only when a long run continues as new.
type ReconcileInput struct {
	WorkspaceID string             `json:"workspace_id"`
	Progress    *ReconcileProgress `json:"progress,omitempty"`
	// LinearMaxAttempts bounds the attempts of each call to Linear (0: DefaultLinearMaxAttempts).
	LinearMaxAttempts int32 `json:"linear_max_attempts,omitempty"`
}

// ReconcileProgress is a run's state carried across continue-as-new: the watermark does not move until the last
// page is applied.
type ReconcileProgress struct {
	StartedAt time.Time           `json:"started_at"`
	Watermark time.Time           `json:"watermark"`
	After     string              `json:"after,omitempty"`
	Newest    time.Time           `json:"newest"`
	Seen      int                 `json:"seen"`
	Repairs   []activities.Repair `json:"repairs,omitempty"`
	// MoreRepairs counts repairs past the first maxRepairDetails; RepairCounts counts them all by kind.
	MoreRepairs  int            `json:"more_repairs,omitempty"`
	RepairCounts map[string]int `json:"repair_counts,omitempty"`
	Reenabled    []string       `json:"reenabled,omitempty"`
	// IssuesDone: the changed issues are applied and After pages through changed comments.
	IssuesDone bool `json:"issues_done,omitempty"`
}

// addRepair records one repair. The run's record keeps the first maxRepairDetails repairs in detail and counts the
// rest, so a run that repairs a great deal never outgrows a workflow payload across continue-as-new.
func (st *ReconcileProgress) addRepair(r activities.Repair) {
	if st.RepairCounts == nil {
		st.RepairCounts = map[string]int{}
	}
	st.RepairCounts[r.Kind]++
	if len(st.Repairs) < maxRepairDetails {
		st.Repairs = append(st.Repairs, r)
	} else {
		st.MoreRepairs++
	}
}

// maxRepairDetails bounds how many repairs a run describes one by one.
const maxRepairDetails = 200

// ReconcileResult says what a run did.
type ReconcileResult struct {
	Connected bool `json:"connected"`
	// Paused: the workspace's connection waits for a reconnect, so the run did nothing.
	Paused    bool                `json:"paused,omitempty"`
	Watermark time.Time           `json:"watermark"`
	Seen      int                 `json:"seen"`
	Repairs   []activities.Repair `json:"repairs,omitempty"`
	// MoreRepairs counts repairs past the first maxRepairDetails.
	MoreRepairs int      `json:"more_repairs,omitempty"`
	Reenabled   []string `json:"reenabled,omitempty"`
	Resynced    int      `json:"resynced"`
}

// Reconcile repairs what a workspace's webhooks missed. It re-enables linsync's webhook when Linear disabled it,
// pages through the issues changed since the watermark and applies each one linked to a question through the
// question sync's own webhook activity (an Issue update built from the issue's current values, so per-field
// versions make it a no-op when nothing was missed), then the comments changed since the watermark on those issues
// (through the comment webhook's activity, one request per page), refreshes filed issues' identifiers, asks questions whose push
// is pending or failed to sync again, and only then advances the watermark and records what it repaired. A
// workspace no longer connected has its schedule removed.
func Reconcile(ctx workflow.Context, in ReconcileInput) (*ReconcileResult, error) {
	var r *activities.Reconciler
	st := in.Progress
	if st == nil {
		var start activities.ReconcileStart
		if err := workflow.ExecuteActivity(storeContext(ctx), r.BeginReconcile, in.WorkspaceID).Get(ctx, &start); err != nil {
			return nil, fmt.Errorf("begin reconciliation of workspace %s: %w", in.WorkspaceID, err)
		}
		if start.Paused {
			workflow.GetLogger(ctx).Info("linear connection waits for a reconnect; nothing to reconcile", "workspace_id", in.WorkspaceID)
			return &ReconcileResult{Paused: true}, nil
		}
		if !start.Connected {
			workflow.GetLogger(ctx).Info("workspace not connected to linear; removing its reconciliation schedule", "workspace_id", in.WorkspaceID)
			if err := workflow.ExecuteActivity(storeContext(ctx), r.DeleteSchedule, ReconcileScheduleID(in.WorkspaceID)).Get(ctx, nil); err != nil {
				return nil, err
			}
			return &ReconcileResult{}, nil
		}
		st = &ReconcileProgress{StartedAt: workflow.Now(ctx), Watermark: start.Watermark, Newest: start.Watermark}
		var check activities.WebhookCheck
		if err := workflow.ExecuteActivity(linearContext(ctx, time.Minute, in.LinearMaxAttempts), r.CheckWebhooks, in.WorkspaceID).Get(ctx, &check); pausedByLinear(err) {
			return &ReconcileResult{Paused: true}, nil
		} else if err != nil {
			return nil, fmt.Errorf("check webhooks of workspace %s: %w", in.WorkspaceID, err)
		}
		st.Reenabled = check.Reenabled
	}

	since := st.Watermark.Add(-reconcileOverlap)
	if !st.IssuesDone {
		for {
			var page activities.ReconcilePage
			pin := activities.ReconcilePageInput{WorkspaceID: in.WorkspaceID, Since: since, After: st.After}
			if err := workflow.ExecuteActivity(linearContext(ctx, time.Minute, in.LinearMaxAttempts), r.ChangedIssues, pin).Get(ctx, &page); pausedByLinear(err) {
				// The watermark stays where it is: the next run after the reconnect reads these changes again.
				return &ReconcileResult{Paused: true}, nil
			} else if err != nil {
				return nil, fmt.Errorf("list changed issues of workspace %s: %w", in.WorkspaceID, err)
			}
			st.Seen += page.Seen
			if page.Newest.After(st.Newest) {
				st.Newest = page.Newest
			}
			for _, issue := range page.Issues {
				repairs, err := reconcileIssue(ctx, in.WorkspaceID, issue)
				if err != nil {
					return nil, err
				}
				for _, r := range repairs {
					st.addRepair(r)
				}
			}
			if page.Next == "" {
				break
			}
			st.After = page.Next
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				in.Progress = st
				return nil, workflow.NewContinueAsNewError(ctx, Reconcile, in)
			}
		}
		st.IssuesDone, st.After = true, ""
	}
	// Comments whose webhooks were lost: one request per page of comments changed since the watermark, applied
	// through the comment webhook's own activity. Runs begun before comments were reconciled go on without.
	for workflow.GetVersion(ctx, "reconcile-comments", workflow.DefaultVersion, 1) == 1 {
		var page activities.ReconcileCommentPage
		pin := activities.ReconcilePageInput{WorkspaceID: in.WorkspaceID, Since: since, After: st.After}
		if err := workflow.ExecuteActivity(linearContext(ctx, time.Minute, in.LinearMaxAttempts), r.ChangedComments, pin).Get(ctx, &page); pausedByLinear(err) {
			return &ReconcileResult{Paused: true}, nil
		} else if err != nil {
			return nil, fmt.Errorf("list changed comments of workspace %s: %w", in.WorkspaceID, err)
		}
		if page.Newest.After(st.Newest) {
			st.Newest = page.Newest
		}
		for _, c := range page.Comments {
			rep, err := reconcileComment(ctx, in.WorkspaceID, c)
			if err != nil {
				return nil, err
			}
			if rep != nil {
				st.addRepair(*rep)
			}
		}
		if page.Next == "" {
			break
		}
		st.After = page.Next
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in.Progress = st
			return nil, workflow.NewContinueAsNewError(ctx, Reconcile, in)
		}
	}

	resynced, err := resyncUnsynced(ctx, in.WorkspaceID)
	if err != nil {
		return nil, err
	}
	info := workflow.GetInfo(ctx)
	report := activities.ReconcileReport{WorkspaceID: in.WorkspaceID, WorkflowID: info.WorkflowExecution.ID,
		RunID: info.FirstRunID, StartedAt: st.StartedAt, WatermarkFrom: st.Watermark, WatermarkTo: st.Newest,
		IssuesSeen: st.Seen, Repairs: st.Repairs, MoreRepairs: st.MoreRepairs, RepairCounts: st.RepairCounts, Reenabled: st.Reenabled, Resynced: resynced}
	if err := workflow.ExecuteActivity(storeContext(ctx), r.FinishReconcile, report).Get(ctx, nil); err != nil {
		return nil, fmt.Errorf("finish reconciliation of workspace %s: %w", in.WorkspaceID, err)
	}
	return &ReconcileResult{Connected: true, Watermark: st.Newest, Seen: st.Seen, Repairs: st.Repairs, MoreRepairs: st.MoreRepairs,
		Reenabled: st.Reenabled, Resynced: resynced}, nil
}

// reconcileIssue applies one changed issue and returns what it repaired.
func reconcileIssue(ctx workflow.Context, workspaceID string, issue activities.ReconcileIssue) ([]activities.Repair, error) {
	var out []activities.Repair
	if issue.Question {
		res, err := applyReconciledQuestion(ctx, workspaceID, issue)
		if err != nil {
			return nil, fmt.Errorf("apply issue %s to its question: %w", issue.IssueID, err)
		}
		if len(res.Changed) > 0 {
			out = append(out, activities.Repair{Kind: activities.DriftQuestion, IssueID: issue.IssueID,
				QuestionID: res.QuestionID, Changed: res.Changed, UpdatedAt: issue.UpdatedAt})
		}
	}
	if issue.Filed {
		var r *activities.Reconciler
		var repaired bool
		in := activities.FiledRepair{WorkspaceID: workspaceID, IssueID: issue.IssueID, Identifier: issue.Identifier, URL: issue.URL}
		if err := workflow.ExecuteActivity(storeContext(ctx), r.RepairFiledIssue, in).Get(ctx, &repaired); err != nil {
			return nil, fmt.Errorf("repair filed issue %s: %w", issue.IssueID, err)
		}
		if repaired {
			out = append(out, activities.Repair{Kind: activities.DriftFiledIssue, IssueID: issue.IssueID,
				Changed: []string{"identifier", "url"}, UpdatedAt: issue.UpdatedAt})
		}
	}
	return out, nil
}

// reconcileComment applies a changed comment's webhooks to its question and returns the repair, nil when the
// webhooks had missed nothing.
func reconcileComment(ctx workflow.Context, workspaceID string, c activities.ReconcileComment) (*activities.Repair, error) {
	var q *activities.Questions
	var rep *activities.Repair
	for i, body := range c.Bodies {
		id := ReconcileDeliveryID(c.CommentID, c.UpdatedAt) + ":" + strconv.Itoa(i)
		res, err := applyReconciled(ctx, workspaceID, id, body, q.ApplyLinearComment)
		if err != nil {
			return nil, fmt.Errorf("apply comment %s to its question: %w", c.CommentID, err)
		}
		if len(res.Changed) > 0 {
			rep = &activities.Repair{Kind: activities.DriftComment, IssueID: c.IssueID, QuestionID: res.QuestionID,
				Changed: res.Changed, UpdatedAt: c.UpdatedAt}
		}
	}
	return rep, nil
}

// ReconcileDeliveryID names a reconciled issue version where the webhook path has a Linear-Delivery id: the app's
// callback for it carries a stable id, so a repeated run notifies the app once.
func ReconcileDeliveryID(issueID string, updatedAt time.Time) string {
	return "reconcile:" + issueID + ":" + strconv.FormatInt(updatedAt.UnixMilli(), 10)
}

// applyReconciledQuestion runs an issue's current values through the steps an Issue webhook takes
// (questionIssueDelivery): the same activities, so the same merge rules, write-back and app callback.
func applyReconciledQuestion(ctx workflow.Context, workspaceID string, issue activities.ReconcileIssue) (*activities.LinearChangeResult, error) {
	var q *activities.Questions
	return applyReconciled(ctx, workspaceID, ReconcileDeliveryID(issue.IssueID, issue.UpdatedAt), issue.Body, q.ApplyLinearIssue)
}

// applyReconciled runs a webhook body reconciliation built through apply, the activity its webhook handler uses,
// then the handler's write-back and app callback.
func applyReconciled(ctx workflow.Context, workspaceID, deliveryID string, body json.RawMessage, apply any) (*activities.LinearChangeResult, error) {
	var q *activities.Questions
	ch := activities.LinearChange{WorkspaceID: workspaceID, DeliveryID: deliveryID, Body: body}
	var res activities.LinearChangeResult
	if err := workflow.ExecuteActivity(storeContext(ctx), apply, ch).Get(ctx, &res); err != nil {
		return nil, err
	}
	ref := activities.QuestionRef{WorkspaceID: workspaceID, QuestionID: res.QuestionID}
	if res.NeedsPush {
		if err := workflow.ExecuteActivity(storeContext(ctx), q.RequestSync, ref).Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	if len(res.Changed) > 0 {
		n := activities.Notification{WorkspaceID: workspaceID, QuestionID: res.QuestionID, ExternalID: res.ExternalID,
			DeliveryID: ch.DeliveryID, Changed: res.Changed}
		if err := workflow.ExecuteActivity(callbackContext(ctx), q.NotifyApp, n).Get(ctx, nil); err != nil {
			// As on the webhook path: the change is applied, and an app that cannot be reached reads it later.
			workflow.GetLogger(ctx).Warn("callback after reconciliation failed", "question_id", res.QuestionID, "err", err)
		}
	}
	return &res, nil
}

// resyncUnsynced asks every question whose push to Linear is pending or failed, and that nothing is working on, to
// sync again; it returns how many it asked.
func resyncUnsynced(ctx workflow.Context, workspaceID string) (int, error) {
	var r *activities.Reconciler
	var q *activities.Questions
	var ids []string
	if err := workflow.ExecuteActivity(storeContext(ctx), r.QuestionsToResync, workspaceID).Get(ctx, &ids); err != nil {
		return 0, fmt.Errorf("list unsynced questions of workspace %s: %w", workspaceID, err)
	}
	n := 0
	for _, id := range ids {
		if err := workflow.ExecuteActivity(storeContext(ctx), q.ResyncQuestion, workspaceID, id).Get(ctx, nil); err != nil {
			// One question that cannot be signalled (deleted meanwhile) must not hold back the watermark of all.
			workflow.GetLogger(ctx).Warn("resync question failed", "question_id", id, "err", err)
			continue
		}
		n++
	}
	return n, nil
}
