package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync/activities"
)

// ReconnectSignal tells a workflow waiting for its workspace's reconnect to Linear to look again; the api sends it to
// every registered waiter when an admin connects again.
const ReconnectSignal = "linear-reconnected"

// How often waiting work looks at the connection by itself, in case a signal was missed: from the first to the
// last interval, doubling. Each look costs a timer and one quick activity in the history.
const (
	reconnectCheckFirst = time.Minute
	reconnectCheckMax   = 30 * time.Minute
)

// pausedByLinear reports whether err says Linear refused the workspace's credential or grant, or that the connection
// is already marked for it: the work can only wait for a reconnect.
func pausedByLinear(err error) bool {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Type() {
	case activities.ErrTypeConnectionPaused, activities.ErrTypeLinearUnauthorized:
		return true
	}
	return false
}

// callLinear runs an activity that calls Linear for workspaceID with the Linear activity options of lctx. When
// Linear refuses the workspace's credential (a key whose owner left, a revoked grant) the call is not a failure: the
// workflow waits for the reconnect (waitForReconnect) and calls again, so queued work drains once an admin connects
// again instead of piling up as dead letters.
func callLinear(ctx, lctx workflow.Context, workspaceID string, result any, activity any, args ...any) error {
	for {
		err := workflow.ExecuteActivity(lctx, activity, args...).Get(ctx, result)
		if err == nil || !pausedByLinear(err) {
			return err
		}
		if werr := waitForReconnect(ctx, workspaceID, err.Error()); werr != nil {
			return werr
		}
	}
}

// waitForReconnect registers the workflow as waiting for its workspace's reconnect and blocks until the connection
// is usable again: woken by ReconnectSignal, or by its own checks on a durable timer.
func waitForReconnect(ctx workflow.Context, workspaceID, reason string) error {
	var a *activities.Reconnect
	info := workflow.GetInfo(ctx)
	in := activities.PauseInput{WorkspaceID: workspaceID, WorkflowID: info.WorkflowExecution.ID,
		RunID: info.WorkflowExecution.RunID, Reason: reason}
	workflow.GetLogger(ctx).Info("waiting for the workspace to reconnect to linear", "workspace_id", workspaceID, "reason", reason)
	var usable bool
	if err := workflow.ExecuteActivity(storeContext(ctx), a.PauseForReconnect, in).Get(ctx, &usable); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, ReconnectSignal)
	wait := reconnectCheckFirst
	for !usable {
		timerCtx, cancel := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) {})
		sel.Select(ctx)
		cancel()
		wait = min(2*wait, reconnectCheckMax)
		if err := workflow.ExecuteActivity(storeContext(ctx), a.ConnectionUsable, workspaceID).Get(ctx, &usable); err != nil {
			return err
		}
	}
	for ch.ReceiveAsync(nil) {
		// Signals that came while the connection was checked mean nothing more now.
	}
	return workflow.ExecuteActivity(storeContext(ctx), a.ResumeAfterReconnect, in).Get(ctx, nil)
}
