package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Gateway's activities decide and forward the agents' requests held for approval: the request itself stays sealed
// in Postgres and is opened only here, just before it is sent.
type Gateway struct {
	DB     *postgres.DB
	Linear *linear.Clients
	// Reserve is the share of every rate-limit window agents may not spend (linear.ForwardOptions.Reserve).
	Reserve float64
	// MaxResponseBytes bounds Linear's answer to an agent's request; 0 is the linear package's bound.
	MaxResponseBytes int64
	Metrics          *Metrics
}

// ApprovalRef names a held request.
type ApprovalRef struct {
	WorkspaceID string `json:"workspace_id"`
	ApprovalID  string `json:"approval_id"`
}

// ForwardOutcome is how the forward of an approved request ended: its approval status and Linear's HTTP status.
type ForwardOutcome struct {
	Status       string `json:"status"`
	LinearStatus int    `json:"linear_status,omitempty"`
}

// ErrTypeGatewayNotSent marks a forward that certainly did not reach Linear and may be tried again.
const ErrTypeGatewayNotSent = "GatewayNotSent"

// ApprovalStatus returns the held request's status.
func (a *Gateway) ApprovalStatus(ctx context.Context, ref ApprovalRef) (string, error) {
	ap, err := a.DB.FindApproval(ctx, ref.WorkspaceID, ref.ApprovalID)
	if err != nil {
		return "", notFoundIsFinal(err)
	}
	return ap.Status, nil
}

// ExpireApproval ends the request if it is still pending when its time is up, and returns its status.
func (a *Gateway) ExpireApproval(ctx context.Context, ref ApprovalRef) (string, error) {
	ap, err := a.DB.ExpireApproval(ctx, ref.WorkspaceID, ref.ApprovalID)
	if err != nil {
		return "", notFoundIsFinal(err)
	}
	if ap.Status == linsync.ApprovalExpired {
		a.Metrics.gatewayForward(linsync.DecisionExpired)
	}
	return ap.Status, nil
}

// GiveUpForward ends an approved request whose forward never reached Linear, after its attempts ran out.
func (a *Gateway) GiveUpForward(ctx context.Context, ref ApprovalRef, reason string) (string, error) {
	ap, err := a.DB.FailApproval(ctx, ref.WorkspaceID, ref.ApprovalID, reason)
	if err != nil {
		return "", notFoundIsFinal(err)
	}
	a.Metrics.gatewayForward(ap.Status)
	return ap.Status, nil
}

func notFoundIsFinal(err error) error {
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return temporal.NewNonRetryableApplicationError("the held request no longer exists", "GatewayApprovalGone", err)
	}
	return err
}

// ForwardApproved sends an approved request to Linear at most once. The intent is recorded before anything is sent
// (postgres.DB.BeginForward): an attempt that finds an earlier attempt's intent does not send, because that attempt
// may have reached Linear and died before recording the answer; the request ends outcome_unknown instead. A request
// that certainly did not reach Linear (the rate budget refused it locally, no connection was made, Linear answered
// RATELIMITED) goes back to approved and the activity is retried.
func (a *Gateway) ForwardApproved(ctx context.Context, ref ApprovalRef) (ForwardOutcome, error) {
	ap, req, ok, err := a.DB.BeginForward(ctx, ref.WorkspaceID, ref.ApprovalID)
	if err != nil {
		return ForwardOutcome{}, notFoundIsFinal(err)
	}
	if !ok {
		return ForwardOutcome{Status: ap.Status, LinearStatus: ap.LinearStatus}, nil
	}
	finish := func(r postgres.ForwardResult) (ForwardOutcome, error) {
		// The answer must be recorded even if the activity's context is ending: it is the only record of a send.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		done, err := a.DB.FinishForward(ctx, ref.WorkspaceID, ref.ApprovalID, r)
		if err != nil {
			return ForwardOutcome{}, err
		}
		a.Metrics.gatewayForward(done.Status)
		return ForwardOutcome{Status: done.Status, LinearStatus: done.LinearStatus}, nil
	}
	notSent := func(cause error, retryAt time.Time) (ForwardOutcome, error) {
		if _, err := finish(postgres.ForwardResult{Status: linsync.ApprovalApproved}); err != nil {
			return ForwardOutcome{}, err
		}
		opts := temporal.ApplicationErrorOptions{Cause: cause}
		if !retryAt.IsZero() {
			opts.NextRetryDelay = max(time.Until(retryAt), time.Second)
		}
		return ForwardOutcome{}, temporal.NewApplicationErrorWithOptions("not sent: "+cause.Error(), ErrTypeGatewayNotSent, opts)
	}

	// The request must still be the one approved.
	schema, err := linear.LoadSchema("")
	if err != nil {
		return notSent(err, time.Time{})
	}
	op, err := linear.ClassifyOperation(schema, req)
	if err != nil || op.Hash != ap.RequestHash {
		return finish(postgres.ForwardResult{Status: linsync.ApprovalFailed, Reason: "the held request no longer matches the approved hash"})
	}
	lc, _, err := LinearFor(ctx, a.Linear, ref.WorkspaceID)
	if err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.NonRetryable() {
			return finish(postgres.ForwardResult{Status: linsync.ApprovalFailed, Reason: ae.Error()})
		}
		return notSent(err, time.Time{})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return finish(postgres.ForwardResult{Status: linsync.ApprovalFailed, Reason: "encode the request"})
	}
	fw, err := lc.Forward(ctx, "gateway "+op.Name, body, linear.ForwardOptions{Reserve: a.Reserve,
		MaxResponseBytes: a.MaxResponseBytes, Complexity: op.Complexity})
	var se *linear.SendError
	switch {
	case errors.As(err, &se) && !se.Sent:
		return notSent(se, se.Err.RetryAt)
	case err != nil:
		return finish(postgres.ForwardResult{Status: linsync.ApprovalOutcomeUnknown,
			Reason: fmt.Sprintf("the request was sent and no answer came back (%v); it is not sent again", err)})
	}
	if e := linear.ClassifyResponse(fw.Status, fw.Header, fw.Body, time.Now()); e != nil && e.Class == linear.ClassRateLimited {
		// Linear refused it before doing anything: safe to send again once the limit resets.
		return notSent(e, e.RetryAt)
	}
	return finish(postgres.ForwardResult{Status: linsync.ApprovalForwarded, LinearStatus: fw.Status, Latency: fw.Latency,
		Response: fw.Body})
}
