package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Temporal error types for a workspace that cannot reach Linear at all; none is retried by Temporal. A paused
// connection (Linear refused its credential or grant) is not a failure: the workflows wait for a reconnect
// (workflows.callLinear) instead of dead-lettering the work.
const (
	ErrTypeNotConnected        = "LinearNotConnected"
	ErrTypeConnectionSuspended = "LinearConnectionSuspended"
	ErrTypeConnectionPaused    = "LinearConnectionPaused"
)

// LinearFor returns the workspace's connection and a client for it from the one factory of Linear clients, with
// its errors as activities return them: a workspace with no connection, a revoked or disconnected one, or one whose
// OAuth grant Linear refused fails fast with a non-retryable error that says why; a refresh that may yet succeed is
// retried.
func LinearFor(ctx context.Context, clients *linear.Clients, workspaceID string) (*linear.Client, *linsync.LinearConnection, error) {
	lc, conn, err := clients.For(ctx, workspaceID)
	var refresh *linear.RefreshError
	switch code := linsync.ErrorCode(err); {
	case err == nil:
		return lc, conn, nil
	case errors.As(err, &refresh) && refresh.Revoked:
		return nil, nil, temporal.NewNonRetryableApplicationError(refresh.Reason, ErrTypeConnectionPaused, nil)
	case errors.As(err, &refresh):
		return nil, nil, err
	case code == linsync.ENOTFOUND:
		return nil, nil, temporal.NewNonRetryableApplicationError("workspace has no Linear connection", ErrTypeNotConnected, err)
	case conn != nil && linsync.ConnectionPaused(conn.Status):
		return nil, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("Linear connection is %s: %s", conn.Status, conn.StatusReason), ErrTypeConnectionPaused, nil)
	case conn != nil && conn.Status != linsync.ConnectionActive:
		return nil, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("Linear connection is %s: %s", conn.Status, conn.StatusReason), ErrTypeConnectionSuspended, nil)
	case code == linsync.ECONFLICT || code == linsync.EUNAUTHORIZED:
		return nil, nil, temporal.NewNonRetryableApplicationError(linsync.ErrorMessage(err), ErrTypeConnectionSuspended, nil)
	case code == linsync.EINVALID:
		return nil, nil, temporal.NewNonRetryableApplicationError("build Linear client", ErrTypeNotConnected, err)
	default:
		return nil, nil, err
	}
}

// Reconnect keeps the register of work waiting for a workspace's reconnect to Linear: a workflow that found the
// connection paused records itself before it waits, so the api can signal every waiting workflow when an admin
// connects again; the workflow clears its row once it resumes.
type Reconnect struct {
	DB *postgres.DB
}

// PauseInput names a workflow that waits for its workspace's reconnect, and why.
type PauseInput struct {
	WorkspaceID string `json:"workspace_id"`
	WorkflowID  string `json:"workflow_id"`
	RunID       string `json:"run_id"`
	Reason      string `json:"reason"`
}

// PauseForReconnect records the workflow as waiting and reports whether the connection is already usable again (a
// reconnect that came before the record would otherwise go unheard until the workflow's next check).
func (a *Reconnect) PauseForReconnect(ctx context.Context, in PauseInput) (bool, error) {
	if err := a.DB.RecordPausedWork(ctx, in.WorkspaceID, linsync.PausedWork{WorkflowID: in.WorkflowID, RunID: in.RunID,
		Reason: in.Reason}); err != nil {
		return false, err
	}
	return a.ConnectionUsable(ctx, in.WorkspaceID)
}

// ConnectionUsable reports whether the workspace's connection is active, so paused work may go on. A workspace
// disconnected or with no connection is usable in this sense too: its work goes on to fail with the reason.
func (a *Reconnect) ConnectionUsable(ctx context.Context, workspaceID string) (bool, error) {
	conn, err := a.DB.FindConnection(ctx, workspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !linsync.ConnectionPaused(conn.Status), nil
}

// ResumeAfterReconnect clears the workflow's record once it goes on.
func (a *Reconnect) ResumeAfterReconnect(ctx context.Context, in PauseInput) error {
	return a.DB.ClearPausedWork(ctx, in.WorkspaceID, in.WorkflowID)
}
