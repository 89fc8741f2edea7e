package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// GatewayDecisionSignal tells a held request's workflow that an admin decided on it (the decision itself is in
// Postgres, where it was recorded under the request's row lock). A lost signal only delays the outcome until the
// request's expiry, when the workflow looks again.
const GatewayDecisionSignal = "gateway-decision"

// GatewayApprovalWorkflowID is the workflow that holds an agent's request until it is decided: one per request.
func GatewayApprovalWorkflowID(workspaceID, approvalID string) string {
	return "gateway-approval:" + workspaceID + ":" + approvalID
}

// GatewayApprovalInput names the held request; the request itself stays sealed in Postgres, so no workflow history
// holds it in clear.
type GatewayApprovalInput struct {
	WorkspaceID string `json:"workspace_id"`
	ApprovalID  string `json:"approval_id"`
	// ExpiresIn is how long the request waits for its decision.
	ExpiresIn         time.Duration `json:"expires_in"`
	LinearMaxAttempts int32         `json:"linear_max_attempts"`
	// ForwardTimeout bounds one attempt to forward the approved request; 0 is a minute.
	ForwardTimeout time.Duration `json:"forward_timeout,omitempty"`
}

// GatewayApprovalResult is how the held request ended.
type GatewayApprovalResult struct {
	Status       string `json:"status"`
	LinearStatus int    `json:"linear_status,omitempty"`
}

// approvalStatusFirst is the GetVersion change id of reading the approval's status before waiting for a decision.
const approvalStatusFirst = "approval-status-first"

// GatewayApproval holds an agent's request until admins approve it, one denies it, or it expires; an approved
// request is forwarded to Linear once (activities.Gateway.ForwardApproved records its intent before sending, so a
// retried attempt never sends twice).
func GatewayApproval(ctx workflow.Context, in GatewayApprovalInput) (GatewayApprovalResult, error) {
	var a *activities.Gateway
	ref := activities.ApprovalRef{WorkspaceID: in.WorkspaceID, ApprovalID: in.ApprovalID}
	sctx := storeContext(ctx)
	decided := workflow.GetSignalChannel(ctx, GatewayDecisionSignal)
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	expiry := workflow.NewTimer(timerCtx, in.ExpiresIn)

	status := linsync.ApprovalPending
	// A decision can be recorded between the request being held and this run starting; its signal then found no
	// run. Read the status once before waiting, so such a decision counts at once rather than at expiry.
	if workflow.GetVersion(ctx, approvalStatusFirst, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.ExecuteActivity(sctx, a.ApprovalStatus, ref).Get(ctx, &status); err != nil {
			return GatewayApprovalResult{}, err
		}
	}
	for status == linsync.ApprovalPending {
		var err error
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(decided, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			err = workflow.ExecuteActivity(sctx, a.ApprovalStatus, ref).Get(ctx, &status)
		})
		sel.AddFuture(expiry, func(workflow.Future) {
			err = workflow.ExecuteActivity(sctx, a.ExpireApproval, ref).Get(ctx, &status)
		})
		sel.Select(ctx)
		if err != nil {
			return GatewayApprovalResult{}, err
		}
	}
	if status != linsync.ApprovalApproved {
		return GatewayApprovalResult{Status: status}, nil
	}
	var out activities.ForwardOutcome
	forwardTimeout := in.ForwardTimeout
	if forwardTimeout <= 0 {
		forwardTimeout = time.Minute
	}
	// Every attempt of a forward ends before Linear saw the request (one that may have reached it ends the request
	// instead), so the input's attempts bound them exactly, without the allowance linearRetryPolicy keeps for
	// attempts linsync's own rate budget held back.
	policy := linearRetryPolicy(in.LinearMaxAttempts)
	policy.MaximumAttempts -= activities.LocalRefusalAllowance
	fctx := workflow.WithRetryPolicy(linearContext(ctx, forwardTimeout, in.LinearMaxAttempts), *policy)
	if err := workflow.ExecuteActivity(fctx, a.ForwardApproved, ref).Get(ctx, &out); err != nil {
		// Every attempt ended without reaching Linear (each one that might have reached it ended the request
		// instead): the request is given up, never sent.
		var final string
		if gerr := workflow.ExecuteActivity(sctx, a.GiveUpForward, ref, err.Error()).Get(ctx, &final); gerr != nil {
			return GatewayApprovalResult{}, gerr
		}
		return GatewayApprovalResult{Status: final}, nil
	}
	return GatewayApprovalResult{Status: out.Status, LinearStatus: out.LinearStatus}, nil
}
