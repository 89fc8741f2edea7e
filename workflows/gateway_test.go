package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

func TestGatewayApprovalWorkflowID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ ws, id, want string }{
		{"ws-1", "a-1", "gateway-approval:ws-1:a-1"},
		{"7e3c", "9f1d-44", "gateway-approval:7e3c:9f1d-44"},
	} {
		require.Equal(t, c.want, GatewayApprovalWorkflowID(c.ws, c.id))
	}
}

// gatewayEnv is the workflow's test environment with its activities mocked: status is what the store says, and the
// forward counts its calls.
type gatewayEnv struct {
	*testsuite.TestWorkflowEnvironment
	status   string
	forwards int
	expired  int
}

var gatewayIn = GatewayApprovalInput{WorkspaceID: "ws-1", ApprovalID: "ap-1", ExpiresIn: 15 * time.Minute}

func newGatewayEnv(t *testing.T, forward func(int) (activities.ForwardOutcome, error)) *gatewayEnv {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	e := &gatewayEnv{TestWorkflowEnvironment: s.NewTestWorkflowEnvironment(), status: linsync.ApprovalPending}
	e.RegisterWorkflow(GatewayApproval)
	var a *activities.Gateway
	e.RegisterActivity(a)
	e.OnActivity(a.ApprovalStatus, mock.Anything, mock.Anything).Return(func(context.Context, activities.ApprovalRef) (string, error) {
		return e.status, nil
	})
	e.OnActivity(a.ExpireApproval, mock.Anything, mock.Anything).Return(func(context.Context, activities.ApprovalRef) (string, error) {
		e.expired++
		if e.status == linsync.ApprovalPending {
			e.status = linsync.ApprovalExpired
		}
		return e.status, nil
	})
	e.OnActivity(a.ForwardApproved, mock.Anything, mock.Anything).Return(func(context.Context, activities.ApprovalRef) (activities.ForwardOutcome, error) {
		e.forwards++
		return forward(e.forwards)
	})
	e.OnActivity(a.GiveUpForward, mock.Anything, mock.Anything, mock.Anything).Return(linsync.ApprovalFailed, nil)
	return e
}

func forwarded(int) (activities.ForwardOutcome, error) {
	return activities.ForwardOutcome{Status: linsync.ApprovalForwarded, LinearStatus: 200}, nil
}

func (e *gatewayEnv) result(t *testing.T) GatewayApprovalResult {
	t.Helper()
	require.True(t, e.IsWorkflowCompleted())
	require.NoError(t, e.GetWorkflowError())
	var r GatewayApprovalResult
	require.NoError(t, e.GetWorkflowResult(&r))
	return r
}

// TestGatewayApprovalApproveForwardsOnce: a first approval of two leaves the request pending; the second approves it
// and the request is forwarded once, long before it would have expired.
func TestGatewayApprovalApproveForwardsOnce(t *testing.T) {
	t.Parallel()
	e := newGatewayEnv(t, forwarded)
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(GatewayDecisionSignal, nil) }, time.Minute) // one of two: still pending
	e.RegisterDelayedCallback(func() {
		require.Zero(t, e.forwards, "nothing forwarded before the second approval")
		e.status = linsync.ApprovalApproved
		e.SignalWorkflow(GatewayDecisionSignal, nil)
	}, 5*time.Minute)
	e.ExecuteWorkflow(GatewayApproval, gatewayIn)
	r := e.result(t)
	require.Equal(t, GatewayApprovalResult{Status: linsync.ApprovalForwarded, LinearStatus: 200}, r)
	require.Equal(t, 1, e.forwards)
	require.Zero(t, e.expired, "decided before expiry")
}

// TestGatewayApprovalDenied: a denial ends the request; nothing is forwarded.
func TestGatewayApprovalDenied(t *testing.T) {
	t.Parallel()
	e := newGatewayEnv(t, forwarded)
	e.RegisterDelayedCallback(func() {
		e.status = linsync.ApprovalDenied
		e.SignalWorkflow(GatewayDecisionSignal, nil)
	}, time.Minute)
	e.ExecuteWorkflow(GatewayApproval, gatewayIn)
	require.Equal(t, linsync.ApprovalDenied, e.result(t).Status)
	require.Zero(t, e.forwards)
}

// TestGatewayApprovalExpiresOnTheTestClock: with no decision, the 15-minute timer (skipped by the test clock) expires
// the request; nothing is forwarded. A decision recorded whose signal was lost is found at expiry instead.
func TestGatewayApprovalExpiresOnTheTestClock(t *testing.T) {
	t.Parallel()
	e := newGatewayEnv(t, forwarded)
	start := e.Now()
	e.ExecuteWorkflow(GatewayApproval, gatewayIn)
	require.Equal(t, linsync.ApprovalExpired, e.result(t).Status)
	require.Zero(t, e.forwards)
	require.Equal(t, 1, e.expired)
	require.GreaterOrEqual(t, e.Now().Sub(start), 15*time.Minute)

	lost := newGatewayEnv(t, forwarded)
	lost.RegisterDelayedCallback(func() { lost.status = linsync.ApprovalApproved }, time.Minute) // approved, no signal
	lost.ExecuteWorkflow(GatewayApproval, gatewayIn)
	require.Equal(t, linsync.ApprovalForwarded, lost.result(t).Status)
	require.Equal(t, 1, lost.forwards)
}

// TestGatewayApprovalNotSentIsRetriedThenGivenUp: a forward that certainly did not reach Linear is retried; when the
// attempts run out the request is given up, never sent. An outcome the activity could not know ends the workflow
// without another attempt.
func TestGatewayApprovalNotSentIsRetriedThenGivenUp(t *testing.T) {
	t.Parallel()
	notSent := func(int) (activities.ForwardOutcome, error) {
		return activities.ForwardOutcome{}, temporal.NewApplicationErrorWithOptions("not sent", activities.ErrTypeGatewayNotSent,
			temporal.ApplicationErrorOptions{NextRetryDelay: time.Second, Cause: errors.New("budget")})
	}
	e := newGatewayEnv(t, notSent)
	e.status = linsync.ApprovalApproved
	in := gatewayIn
	in.LinearMaxAttempts = 3
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(GatewayDecisionSignal, nil) }, time.Second)
	e.ExecuteWorkflow(GatewayApproval, in)
	require.Equal(t, linsync.ApprovalFailed, e.result(t).Status)
	require.Equal(t, 3, e.forwards)

	unknown := newGatewayEnv(t, func(int) (activities.ForwardOutcome, error) {
		return activities.ForwardOutcome{Status: linsync.ApprovalOutcomeUnknown}, nil
	})
	unknown.status = linsync.ApprovalApproved
	unknown.RegisterDelayedCallback(func() { unknown.SignalWorkflow(GatewayDecisionSignal, nil) }, time.Second)
	unknown.ExecuteWorkflow(GatewayApproval, gatewayIn)
	require.Equal(t, linsync.ApprovalOutcomeUnknown, unknown.result(t).Status)
	require.Equal(t, 1, unknown.forwards)
}

// TestGatewayApprovalDecidedBeforeItsRunStarted: an admin approved while the run was not started yet, so the
// decision's signal found no run; the run reads the status when it starts and forwards at once, not at expiry.
func TestGatewayApprovalDecidedBeforeItsRunStarted(t *testing.T) {
	t.Parallel()
	e := newGatewayEnv(t, forwarded)
	e.status = linsync.ApprovalApproved
	e.ExecuteWorkflow(GatewayApproval, gatewayIn)
	r := e.result(t)
	require.Equal(t, linsync.ApprovalForwarded, r.Status)
	require.Equal(t, 1, e.forwards)
	require.Zero(t, e.expired, "the decision counted before the request could expire")
}
