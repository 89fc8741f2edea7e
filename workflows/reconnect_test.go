package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
)

// TestCallLinearWaitsForReconnect: Linear refuses the workspace's credential; the call neither fails nor retries at
// once: the workflow registers as waiting, sleeps until the reconnect signal, finds the connection usable, clears
// its registration and calls again, which now succeeds. A forbidden answer (not an authentication refusal) fails.
func TestCallLinearWaitsForReconnect(t *testing.T) {
	t.Parallel()
	env := newBareEventsEnv(t)
	env.RegisterActivity(&activities.Reconnect{})
	var ev *activities.Events
	var rc *activities.Reconnect
	calls := 0
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(func(context.Context, activities.FileInput) (*activities.FileResult, error) {
		calls++
		if calls == 1 {
			return nil, temporal.NewNonRetryableApplicationError("key refused", activities.ErrTypeLinearUnauthorized, nil)
		}
		return &activities.FileResult{IssueID: "issue-1"}, nil
	})
	env.OnActivity(rc.PauseForReconnect, mock.Anything, mock.Anything).Return(false, nil).Once()
	usable := false
	env.OnActivity(rc.ConnectionUsable, mock.Anything, "ws-1").Return(func(context.Context, string) (bool, error) { return usable, nil })
	env.OnActivity(rc.ResumeAfterReconnect, mock.Anything, mock.Anything).Return(nil).Once()
	wf := func(ctx workflow.Context) (string, error) {
		var res activities.FileResult
		err := callLinear(ctx, linearContext(ctx, time.Minute, 5), "ws-1", &res, ev.FileEntries, activities.FileInput{WorkspaceID: "ws-1"})
		return res.IssueID, err
	}
	env.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "callLinearTest"})
	env.RegisterDelayedCallback(func() {
		require.Equal(t, 1, calls, "no second call while the connection is paused")
		usable = true
		env.SignalWorkflow(ReconnectSignal, nil)
	}, 3*time.Hour)
	env.ExecuteWorkflow("callLinearTest")
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var id string
	require.NoError(t, env.GetWorkflowResult(&id))
	require.Equal(t, "issue-1", id)
	require.Equal(t, 2, calls)
	env.AssertExpectations(t)
}

func TestPausedByLinear(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]bool{
		activities.ErrTypeLinearUnauthorized: true, activities.ErrTypeConnectionPaused: true,
		activities.ErrTypeLinearForbidden: false, activities.ErrTypeConnectionSuspended: false, activities.ErrTypeLinearInvalid: false,
	} {
		require.Equal(t, want, pausedByLinear(temporal.NewNonRetryableApplicationError("x", typ, nil)), typ)
	}
	require.False(t, pausedByLinear(nil))
}
