package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// registerSyncStatusRoutes adds the unsynced view and the reconciliation setting. Both are admin routes, like
// failed-events: the view shows Linear's error messages for every capability's work.
func (s *Server) registerSyncStatusRoutes(ws *gin.RouterGroup) {
	admin := s.authorize(linsync.ScopeAdmin)
	ws.GET("/sync-status", admin, s.handleSyncStatus)
	ws.GET("/reconcile", admin, s.handleGetReconcile)
	ws.PUT("/reconcile", admin, s.handlePutReconcile)
}

// Kinds of unsynced items.
const (
	syncItemQuestion    = "question"
	syncItemFiledIssue  = "filed_issue"
	syncItemFailedEvent = "failed_event"
)

// Next actions of unsynced items besides the questions' (linsync.NextAction*).
const (
	nextActionReplay      = "replay"
	nextActionCheckFailed = "check_failed_events"
)

// syncItem is one question or filed event whose last sync failed or is pending.
type syncItem struct {
	Kind          string     `json:"kind"`
	ID            string     `json:"id"`
	ExternalID    string     `json:"external_id,omitempty"`
	EventKind     string     `json:"event_kind,omitempty"`
	State         string     `json:"state"`
	Reason        string     `json:"reason"`
	Attempts      int        `json:"attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	NextAction    string     `json:"next_action"`
	WorkflowID    string     `json:"workflow_id,omitempty"`
	UIURL         string     `json:"ui_url,omitempty"`
}

// syncStatusLimit bounds each source of the view; a workspace with more unsynced work sees the oldest first.
const syncStatusLimit = 500

// deadLetterKindsOfEvents are the workflows whose dead letters are filed events that never reached Linear.
var deadLetterKindsOfEvents = []string{workflows.TypeFileEvent, workflows.TypeIssueAggregator}

func (s *Server) handleSyncStatus(c *gin.Context) {
	ws := workspaceOf(c)
	items := []syncItem{}
	qs, err := s.db.UnsyncedQuestions(c, ws.ID, syncStatusLimit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	for _, q := range qs {
		items = append(items, syncItem{Kind: syncItemQuestion, ID: q.QuestionID, ExternalID: q.ExternalID, State: q.State,
			Reason: q.Reason, Attempts: q.Attempts, LastAttemptAt: q.LastAttemptAt, NextAction: q.NextAction})
	}
	filings, err := s.db.PendingFilings(c, ws.ID, syncStatusLimit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	for _, f := range filings {
		next := linsync.NextActionWait
		if !f.Recent {
			// A filing stuck past the grace either failed for good (its dead letter is below) or waits for its
			// aggregator's next flush.
			next = nextActionCheckFailed
		}
		at := f.UpdatedAt
		items = append(items, syncItem{Kind: syncItemFiledIssue, ID: f.IssueID, EventKind: f.Kind, State: linsync.SyncPending,
			Reason:        fmt.Sprintf("the Linear issue for %s is not created yet (%d events)", f.DedupKey, f.Entries),
			LastAttemptAt: &at, NextAction: next})
	}
	for _, kind := range deadLetterKindsOfEvents {
		ds, err := s.db.ListDeadLetters(c, linsync.DeadLetterFilter{WorkspaceID: ws.ID, Kind: kind, Status: "open",
			Limit: syncStatusLimit})
		if err != nil {
			s.writeError(c, err)
			return
		}
		for _, d := range ds {
			at := d.LastFailed
			items = append(items, syncItem{Kind: syncItemFailedEvent, ID: d.ID, EventKind: d.Kind, State: linsync.SyncFailed,
				Reason: d.ErrorClass + ": " + d.ErrorMessage, Attempts: d.Attempts, LastAttemptAt: &at,
				NextAction: nextActionReplay, WorkflowID: d.WorkflowID, UIURL: d.UIURL})
		}
	}
	rec, err := s.reconcileView(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	health, err := s.connectionHealth(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// Acknowledged work of the workspace whose workflow has not started yet (Temporal slow or away).
	inbox, err := s.db.InboxStats(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "reconcile": rec, "connection": health, "inbox": inbox})
}

// reconcileView is a workspace's reconciliation setting and its last runs.
type reconcileView struct {
	IntervalSeconds int                    `json:"interval_seconds"`
	Default         bool                   `json:"default"`
	ScheduleID      string                 `json:"schedule_id"`
	Runs            []linsync.ReconcileRun `json:"runs"`
}

func (s *Server) reconcileView(ctx context.Context, workspaceID string) (*reconcileView, error) {
	every, err := s.db.ReconcileInterval(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	v := &reconcileView{IntervalSeconds: int(s.start.ReconcileInterval(every).Seconds()), Default: every == 0,
		ScheduleID: workflows.ReconcileScheduleID(workspaceID)}
	if v.Runs, err = s.db.ListReconcileRuns(ctx, workspaceID, 10); err != nil {
		return nil, err
	}
	return v, nil
}

func (s *Server) handleGetReconcile(c *gin.Context) {
	v, err := s.reconcileView(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

type reconcileRequest struct {
	// IntervalSeconds is the workspace's own interval; 0 returns it to the global default.
	IntervalSeconds *int `json:"interval_seconds"`
}

// handlePutReconcile sets the workspace's reconciliation interval and applies it to its schedule (when connected).
func (s *Server) handlePutReconcile(c *gin.Context) {
	var req reconcileRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.IntervalSeconds == nil || *req.IntervalSeconds < 0 {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "interval_seconds",
			Message: "interval_seconds is required: 0 (the default) or at least 60"})
		return
	}
	ws := workspaceOf(c)
	every := time.Duration(*req.IntervalSeconds) * time.Second
	if err := s.db.SetReconcileInterval(c, ws.ID, every); err != nil {
		s.writeError(c, err)
		return
	}
	conn, err := s.db.FindConnection(c, ws.ID)
	if err != nil && linsync.ErrorCode(err) != linsync.ENOTFOUND {
		s.writeError(c, err)
		return
	}
	if err == nil && conn.Status == linsync.ConnectionActive {
		if err := s.scheduleReconcile(c, ws.ID); err != nil {
			s.writeError(c, linsync.Errorf(linsync.EUNAVAILABLE, "the interval is stored but the schedule could not be updated; retry"))
			return
		}
	}
	s.handleGetReconcile(c)
}

// scheduleReconcile creates or updates the workspace's reconciliation schedule at its interval.
func (s *Server) scheduleReconcile(ctx context.Context, workspaceID string) error {
	every, err := s.db.ReconcileInterval(ctx, workspaceID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*s.cfg.StartTimeout)
	defer cancel()
	if err := s.start.EnsureReconcileSchedule(ctx, workspaceID, every); err != nil {
		s.log.WarnContext(ctx, "ensure reconcile schedule failed", "workspace_id", workspaceID, "err", err)
		return err
	}
	return nil
}

// afterConnectReconcile schedules reconciliation for a workspace that just connected. A failure does not undo the
// connect: the worker ensures every connected workspace's schedule when it starts.
func (s *Server) afterConnectReconcile(ctx context.Context, workspaceID string) {
	_ = s.scheduleReconcile(context.WithoutCancel(ctx), workspaceID)
}

// afterDisconnectReconcile removes a disconnected workspace's schedule. A failure is logged: a run of a schedule
// left behind finds no connection and deletes its own schedule.
func (s *Server) afterDisconnectReconcile(ctx context.Context, workspaceID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*s.cfg.StartTimeout)
	defer cancel()
	if err := workflows.DeleteReconcileSchedule(ctx, s.temporal, workspaceID); err != nil {
		s.log.WarnContext(ctx, "delete reconcile schedule failed", "workspace_id", workspaceID, "err", err)
	}
}
