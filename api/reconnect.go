package api

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// resumePausedWork wakes every workflow that waits for the workspace's reconnect to Linear (workflows.callLinear):
// each is signalled and goes on with its queued work. A waiter that has ended meanwhile is forgotten. It returns how
// many were woken; failures are logged, since each waiter also checks the connection on its own timer.
func (s *Server) resumePausedWork(ctx context.Context, workspaceID string) int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*s.cfg.StartTimeout)
	defer cancel()
	waiting, err := s.db.ListPausedWork(ctx, workspaceID)
	if err != nil {
		s.log.WarnContext(ctx, "list paused work failed", "workspace_id", workspaceID, "err", err)
		return 0
	}
	woken := 0
	for _, w := range waiting {
		err := s.temporal.SignalWorkflow(ctx, w.WorkflowID, "", workflows.ReconnectSignal, nil)
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			woken++
		case errors.As(err, &nf):
			_ = s.db.ClearPausedWork(ctx, workspaceID, w.WorkflowID)
		default:
			s.log.WarnContext(ctx, "wake paused workflow failed", "workspace_id", workspaceID, "workflow_id", w.WorkflowID, "err", err)
		}
	}
	if woken > 0 {
		s.log.InfoContext(ctx, "linear reconnected; paused work resumed", "workspace_id", workspaceID, "workflows", woken)
	}
	return woken
}

// connectionHealth is what the integration status and the sync-status view say about a workspace's connection:
// its status, why and since when, and the work waiting for a reconnect.
type connectionHealth struct {
	Status          string               `json:"status"`
	StatusReason    string               `json:"status_reason,omitempty"`
	StatusChangedAt *time.Time           `json:"status_changed_at,omitempty"`
	PausedWork      []linsync.PausedWork `json:"paused_work"`
}

func (s *Server) connectionHealth(ctx context.Context, workspaceID string) (*connectionHealth, error) {
	conn, err := s.db.FindConnection(ctx, workspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return &connectionHealth{Status: "not_connected", PausedWork: []linsync.PausedWork{}}, nil
	}
	if err != nil {
		return nil, err
	}
	h := &connectionHealth{Status: conn.Status, StatusReason: conn.StatusReason, StatusChangedAt: conn.StatusChangedAt}
	if h.PausedWork, err = s.db.ListPausedWork(ctx, workspaceID); err != nil {
		return nil, err
	}
	if h.PausedWork == nil {
		h.PausedWork = []linsync.PausedWork{}
	}
	return h, nil
}
