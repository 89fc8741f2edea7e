package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// registerDeadLetterRoutes adds the failed-events API: list, inspect, replay one or many (with a dry run).
func (s *Server) registerDeadLetterRoutes(ws *gin.RouterGroup) {
	admin := s.authorize(linsync.ScopeAdmin)
	ws.GET("/failed-events", admin, s.handleListDeadLetters)
	ws.GET("/failed-events/:id", admin, s.handleGetDeadLetter)
	ws.POST("/failed-events/:id/replay", admin, s.handleReplayDeadLetter)
	// Gin needs the colon escaped to read "failed-events:replay" as one literal segment.
	ws.POST(`/failed-events\:replay`, admin, s.handleBulkReplay)
	ws.GET(`/failed-events\:replay/:request`, admin, s.handleBulkReplayProgress)
}

func (s *Server) deadLetterFilter(c *gin.Context) (linsync.DeadLetterFilter, error) {
	f := linsync.DeadLetterFilter{WorkspaceID: workspaceOf(c).ID, Kind: c.Query("kind"), ErrorClass: c.Query("error_class"),
		Status: c.Query("status"), After: c.Query("cursor")}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.Query(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, &linsync.Error{Code: linsync.EINVALID, Field: name, Message: name + " must be an RFC 3339 time"}
			}
			*dst = t
		}
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, &linsync.Error{Code: linsync.EINVALID, Field: "limit", Message: "limit must be 1-500"}
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Server) handleListDeadLetters(c *gin.Context) {
	f, err := s.deadLetterFilter(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ds, err := s.db.ListDeadLetters(c, f)
	if err != nil {
		s.writeError(c, err)
		return
	}
	next := ""
	if f.Limit > 0 && len(ds) == f.Limit || f.Limit == 0 && len(ds) == 50 {
		next = ds[len(ds)-1].ID
	}
	// Each failed event carries its input (a webhook body is up to 1 MiB): the page ends early rather than grow past
	// maxPageBytes, and the cursor continues after the last one shown.
	size := 0
	for i := range ds {
		size += len(ds[i].Input) + len(ds[i].ErrorMessage) + 512
		if i > 0 && size > maxPageBytes {
			ds, next = ds[:i], ds[i-1].ID
			break
		}
	}
	c.JSON(http.StatusOK, gin.H{"failed_events": ds, "next_cursor": next})
}

func (s *Server) handleGetDeadLetter(c *gin.Context) {
	d, err := s.db.FindDeadLetter(c, workspaceOf(c).ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

// replayPlan is what a dry run says a replay would do, judged against Temporal's, linsync's and Linear's current
// state: in a sentence (Reason), field by field what it would write to Linear (Writes), and what changed since the
// failure (SinceFailure).
type replayPlan struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	WorkflowID  string `json:"workflow_id"`
	WouldReplay bool   `json:"would_replay"`
	Reason      string `json:"reason"`
	// Writes is empty when the replay would write nothing to Linear.
	Writes       []fieldChange `json:"writes"`
	SinceFailure []changeSince `json:"since_failure"`
}

// fieldChange is one field a replay would write to Linear: Before is Linear's value now (as read from Linear, or as
// linsync last wrote it; null for an issue not created yet), After the value the replay writes.
type fieldChange struct {
	Field  string `json:"field"`
	Before any    `json:"before"`
	After  any    `json:"after"`
	Note   string `json:"note,omitempty"`
}

// changeSince is one thing that changed after the run failed: the field, its value now, when and by whom.
type changeSince struct {
	Field string    `json:"field"`
	Now   any       `json:"now"`
	At    time.Time `json:"at"`
	By    string    `json:"by"`
}

func (s *Server) plan(ctx context.Context, d *linsync.DeadLetter) replayPlan {
	p := s.planOf(ctx, d)
	if p.Writes == nil || !p.WouldReplay {
		p.Writes = []fieldChange{}
	}
	if p.SinceFailure == nil {
		p.SinceFailure = []changeSince{}
	}
	return p
}

func (s *Server) planOf(ctx context.Context, d *linsync.DeadLetter) replayPlan {
	p := replayPlan{ID: d.ID, Kind: d.Kind, WorkflowID: d.WorkflowID}
	if d.Kind == linsync.KindQuestionPush {
		return s.planQuestionPush(ctx, d, p)
	}
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, d.WorkflowID, "")
	if err == nil {
		info := desc.GetWorkflowExecutionInfo()
		switch st := info.GetStatus(); st {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			p.Reason = "already running (run " + info.GetExecution().GetRunId() + "); a replay would start nothing"
			return p
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			p.Reason = "already completed (run " + info.GetExecution().GetRunId() + "); a replay would start nothing"
			return p
		}
	}
	p.WouldReplay = true
	if s.planEventReplay(ctx, d, &p) {
		return p
	}
	if d.Kind == workflows.TypeLinearDelivery {
		var args []workflows.LinearDeliveryInput
		if json.Unmarshal(d.Input, &args) == nil && len(args) == 1 {
			in := args[0]
			ts := in.WebhookTimestamp
			newer, err := s.db.NewerDelivery(ctx, in.WorkspaceID, in.EntityID, linsync.Delivery{WebhookTimestamp: &ts})
			if err == nil && newer != nil {
				p.SinceFailure = append(p.SinceFailure, changeSince{Field: in.EventType + " " + in.EntityID,
					Now: newer.EventType + "/" + newer.Action, At: *newer.WebhookTimestamp, By: "Linear"})
				p.Reason = fmt.Sprintf("re-runs %s/%s for %s, but a newer %s/%s for it (sent %s) was applied since: "+
					"handlers keep the newer values, so this replay changes nothing they hold", in.EventType, in.Action,
					in.EntityID, newer.EventType, newer.Action, newer.WebhookTimestamp.Format(time.RFC3339))
				return p
			}
			p.Reason = fmt.Sprintf("re-runs %s/%s for %s (sent %s) through its handler", in.EventType, in.Action,
				in.EntityID, ts.Format(time.RFC3339))
			return p
		}
	}
	p.Reason = fmt.Sprintf("re-runs %s with the stored input under workflow ID %s", d.Kind, d.WorkflowID)
	return p
}

func (s *Server) handleReplayDeadLetter(c *gin.Context) {
	d, err := s.db.FindDeadLetter(c, workspaceOf(c).ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	if c.Query("dry_run") == "true" {
		c.JSON(http.StatusOK, gin.H{"dry_run": true, "plan": []replayPlan{s.plan(c, d)}})
		return
	}
	progress, id, err := s.startReplay(c, workflows.ReplayInput{WorkspaceID: workspaceOf(c).ID, IDs: []string{d.ID}}, true)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"replay_workflow_id": id, "result": progress.Results[0]})
}

type bulkReplayRequest struct {
	Kind          string    `json:"kind"`
	ErrorClass    string    `json:"error_class"`
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until"`
	Max           int       `json:"max"`
	RatePerSecond float64   `json:"rate_per_second"`
}

// handleBulkReplay replays every open failed event matching a filter, paced by a workflow (at most 20 a second).
func (s *Server) handleBulkReplay(c *gin.Context) {
	var req bulkReplayRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Max <= 0 || req.Max > 500 {
		req.Max = 500
	}
	if req.RatePerSecond <= 0 || req.RatePerSecond > 20 {
		req.RatePerSecond = min(max(req.RatePerSecond, 5), 20)
	}
	ws := workspaceOf(c)
	if c.Query("dry_run") == "true" {
		ds, err := s.db.ListDeadLetters(c, linsync.DeadLetterFilter{WorkspaceID: ws.ID, Kind: req.Kind,
			ErrorClass: req.ErrorClass, Since: req.Since, Until: req.Until, Status: linsync.DeadLetterOpen, Limit: req.Max})
		if err != nil {
			s.writeError(c, err)
			return
		}
		// Each plan asks Temporal and Postgres; however slow they are, the whole dry run answers within its deadline,
		// and what it had no time for is said, not guessed.
		ctx, cancel := context.WithTimeout(c, s.cfg.DryRunDeadline)
		defer cancel()
		plans := make([]replayPlan, 0, len(ds))
		for i := range ds {
			if ctx.Err() != nil {
				c.JSON(http.StatusOK, gin.H{"dry_run": true, "plan": plans, "incomplete": true,
					"message": fmt.Sprintf("the dry run's deadline (%s) passed after %d of %d failed events; narrow the filter or retry",
						s.cfg.DryRunDeadline, len(plans), len(ds))})
				return
			}
			plans = append(plans, s.plan(ctx, &ds[i]))
		}
		c.JSON(http.StatusOK, gin.H{"dry_run": true, "plan": plans})
		return
	}
	_, id, err := s.startReplay(c, workflows.ReplayInput{WorkspaceID: ws.ID, Kind: req.Kind, ErrorClass: req.ErrorClass,
		Since: req.Since, Until: req.Until, Max: req.Max, RatePerSecond: req.RatePerSecond}, false)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"replay_workflow_id": id, "request_id": id[len(workflows.ReplayWorkflowID(ws.ID, "")):]})
}

func (s *Server) handleBulkReplayProgress(c *gin.Context) {
	id := workflows.ReplayWorkflowID(workspaceOf(c).ID, c.Param("request"))
	v, err := s.temporal.QueryWorkflow(c, id, "", "progress")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		s.writeError(c, linsync.Errorf(linsync.ENOTFOUND, "replay request not found"))
		return
	case err != nil:
		s.log.WarnContext(c, "query replay progress", "replay_workflow_id", id, "err", err)
		s.writeError(c, linsync.Errorf(linsync.EUNAVAILABLE, "workflow engine unavailable; retry later"))
		return
	}
	var p workflows.ReplayProgress
	if err := v.Get(&p); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// startReplay starts a replay workflow and, when wait is set, waits for its result.
func (s *Server) startReplay(ctx context.Context, in workflows.ReplayInput, wait bool) (workflows.ReplayProgress, string, error) {
	id := workflows.ReplayWorkflowID(in.WorkspaceID, uuid.NewString())
	var p workflows.ReplayProgress
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	run, err := s.temporal.ExecuteWorkflow(sctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.cfg.TaskQueue}, workflows.ReplayDeadLetters, in)
	if err != nil {
		return p, id, linsync.Errorf(linsync.EUNAVAILABLE, "workflow engine unavailable; retry later")
	}
	if !wait {
		return p, id, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := run.Get(wctx, &p); err != nil {
		s.log.WarnContext(ctx, "replay did not finish in time", "replay_workflow_id", id, "err", err)
		return p, id, linsync.Errorf(linsync.EUNAVAILABLE, "the replay did not finish in time; follow it as %s", id)
	}
	return p, id, nil
}

// planQuestionPush judges a failed question push against the question as it is now: the replay asks its workflow to
// write what Linear still lacks, which is nothing once the question is synced.
func (s *Server) planQuestionPush(ctx context.Context, d *linsync.DeadLetter, p replayPlan) replayPlan {
	var refs []struct {
		WorkspaceID string `json:"workspace_id"`
		QuestionID  string `json:"question_id"`
	}
	if json.Unmarshal(d.Input, &refs) != nil || len(refs) != 1 {
		p.Reason = "the stored input is not a question reference; nothing to replay"
		return p
	}
	q, err := s.db.FindQuestion(ctx, refs[0].WorkspaceID, refs[0].QuestionID)
	if err != nil {
		q = nil
	}
	switch {
	case q == nil:
		p.Reason = "question " + refs[0].QuestionID + " is gone; nothing to replay"
	case q.SyncState == "synced":
		p.Reason = "question " + q.ID + " has synced since this failure; a replay writes nothing"
	default:
		p.WouldReplay = true
		p.Reason = fmt.Sprintf("asks question %s's workflow to write what Linear still lacks (sync state %s: %s)",
			q.ID, q.SyncState, q.SyncReason)
		p.Writes = s.questionWrites(ctx, q)
	}
	if q != nil {
		for _, name := range linsync.SyncedFields {
			f := q.Fields[name]
			if f.SourceAt.After(d.LastFailed) {
				p.SinceFailure = append(p.SinceFailure, changeSince{Field: name, Now: f.Value, At: f.SourceAt, By: f.Source})
			}
			if f.LinearAt.After(d.LastFailed) && f.LinearAt != f.SourceAt {
				p.SinceFailure = append(p.SinceFailure, changeSince{Field: name, Now: f.LinearValue, At: f.LinearAt, By: "Linear"})
			}
		}
	}
	return p
}

// questionWrites is what a question's sync pass would write to Linear now, field by field: the issue and every field
// when it is not created yet, else each field whose value Linear has not been given, and every reply not yet a
// comment.
func (s *Server) questionWrites(ctx context.Context, q *linsync.Question) []fieldChange {
	out := []fieldChange{}
	if !q.IssueCreated {
		out = append(out, fieldChange{Field: "issue", After: "issueCreate"}, fieldChange{Field: "team", After: q.TeamID})
	}
	for _, name := range linsync.SyncedFields {
		f := q.Fields[name]
		switch {
		case !q.IssueCreated && f.Value != "":
			out = append(out, fieldChange{Field: name, After: f.Value})
		case q.IssueCreated && f.Dirty():
			out = append(out, fieldChange{Field: name, Before: f.LinearValue, After: f.Value})
		}
	}
	replies, err := s.db.ListReplies(ctx, q.ID)
	if err != nil {
		s.log.WarnContext(ctx, "read replies for a dry run", "question_id", q.ID, "err", err)
		return out
	}
	for _, r := range replies {
		if r.Source == "app" && !r.Synced && r.DeletedAt == nil {
			out = append(out, fieldChange{Field: "comment", After: r.Body, Note: "reply " + r.ID + " by " + r.AuthorEmail})
		}
	}
	return out
}
