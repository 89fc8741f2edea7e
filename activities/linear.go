package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

// Temporal error types for a workspace that cannot reach Linear at all; neither is retried.
const (
	ErrTypeNotConnected        = "LinearNotConnected"
	ErrTypeConnectionSuspended = "LinearConnectionSuspended"
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
		return nil, nil, temporal.NewNonRetryableApplicationError(refresh.Reason, ErrTypeConnectionSuspended, nil)
	case errors.As(err, &refresh):
		return nil, nil, err
	case code == linsync.ENOTFOUND:
		return nil, nil, temporal.NewNonRetryableApplicationError("workspace has no Linear connection", ErrTypeNotConnected, err)
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
