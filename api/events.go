package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// Limits of event intake.
const (
	// MaxEventBatch is the most events one POST /events:batch may carry (in a body of at most 1 MiB).
	MaxEventBatch = 500
	// batchStartConcurrency bounds the workflow starts one batch runs at once.
	batchStartConcurrency = 16
	headerIdempotencyKey  = "Idempotency-Key"
)

// Item statuses of event intake.
const (
	itemAccepted    = "accepted"
	itemDuplicate   = "duplicate"
	itemInvalid     = "invalid"
	itemUnavailable = "unavailable"
)

// registerEventRoutes adds event intake, routing simulation and filed issues (scope events:write), and the routing
// rules and event settings (read with events:write, changed with admin).
func (s *Server) registerEventRoutes(ws *gin.RouterGroup) {
	ew := s.authorize(linsync.ScopeEventsWrite)
	admin := s.authorize(linsync.ScopeAdmin)
	ws.POST("/events", ew, s.handlePostEvent)
	// The colon is escaped so gin reads it literally: the path is /events:batch, not a parameter.
	ws.POST(`/events\:batch`, ew, s.handlePostEventBatch)
	ws.POST(`/routing\:simulate`, ew, s.handleSimulateRouting)
	ws.GET("/routing-rules", ew, s.handleGetRoutingRules)
	ws.PUT("/routing-rules", admin, s.handlePutRoutingRules)
	ws.GET("/event-settings", ew, s.handleGetEventSettings)
	ws.PUT("/event-settings", admin, s.handlePutEventSettings)
	ws.GET("/filed-issues", ew, s.handleListFiledIssues)
}

// eventItem is one event's answer.
type eventItem struct {
	Index      int          `json:"index"`
	Key        string       `json:"idempotency_key,omitempty"`
	Status     string       `json:"status"`
	WorkflowID string       `json:"workflow_id,omitempty"`
	Errors     []fieldError `json:"errors,omitempty"`
}

// handlePostEvent accepts one event. Its idempotency key is the Idempotency-Key header or the event's own id;
// a resubmission answers 200 duplicate and starts nothing.
func (s *Server) handlePostEvent(c *gin.Context) {
	received := s.now().UTC()
	var raw json.RawMessage
	if err := bindJSON(c, &raw); err != nil {
		s.writeError(c, err)
		return
	}
	key, ev, errs := decodeEvent(raw, "", c.GetHeader(headerIdempotencyKey), received)
	if len(errs) > 0 {
		s.writeError(c, errs[0].err())
		return
	}
	ws := workspaceOf(c)
	done, err := s.db.CompletedEventKeys(c, ws.ID, []string{key})
	if err != nil {
		s.writeError(c, linsync.Errorf(linsync.EUNAVAILABLE, "event store unavailable; retry later"))
		return
	}
	item := eventItem{Key: key, Status: itemDuplicate, WorkflowID: workflows.EventWorkflowID(ws.ID, key)}
	if !done[key] {
		item = s.startEvent(c, ws.ID, key, ev, received)
	}
	switch item.Status {
	case itemAccepted:
		c.JSON(http.StatusAccepted, item)
	case itemDuplicate:
		c.JSON(http.StatusOK, item)
	default:
		s.writeError(c, linsync.Errorf(linsync.EUNAVAILABLE, "workflow engine unavailable; retry later"))
	}
}

// handlePostEventBatch accepts up to MaxEventBatch events and answers each one: accepted, duplicate or invalid
// (with its field errors). When Temporal did not take some of them it answers 503 with the items, so the sender
// retries the batch; what was accepted then answers duplicate.
func (s *Server) handlePostEventBatch(c *gin.Context) {
	received := s.now().UTC()
	var req struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	switch {
	case req.Items == nil:
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "items", Message: "items is required"})
		return
	case len(req.Items) > MaxEventBatch:
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "items",
			Message: fmt.Sprintf("a batch carries at most %d events, not %d", MaxEventBatch, len(req.Items))})
		return
	}

	ws := workspaceOf(c)
	items := make([]eventItem, len(req.Items))
	events := make([]linsync.Event, len(req.Items))
	var keys []string
	first := map[string]int{}
	for i, raw := range req.Items {
		key, ev, errs := decodeEvent(raw, "items["+strconv.Itoa(i)+"]", "", received)
		items[i] = eventItem{Index: i, Key: key}
		switch {
		case len(errs) > 0:
			items[i].Status, items[i].Errors = itemInvalid, errs
		case first[key] > 0:
			items[i].Status = itemDuplicate // the same key twice in one batch: the first one counts
			items[i].WorkflowID = workflows.EventWorkflowID(ws.ID, key)
		default:
			first[key] = i + 1
			events[i] = ev
			keys = append(keys, key)
		}
	}
	done, err := s.db.CompletedEventKeys(c, ws.ID, keys)
	if err != nil {
		s.writeError(c, linsync.Errorf(linsync.EUNAVAILABLE, "event store unavailable; retry later"))
		return
	}

	// Start the rest a few at a time: Temporal takes concurrent starts well, and a 500-event batch must answer fast.
	sem := make(chan struct{}, batchStartConcurrency)
	var wg sync.WaitGroup
	for i := range items {
		if items[i].Status != "" {
			continue
		}
		if done[items[i].Key] {
			items[i].Status, items[i].WorkflowID = itemDuplicate, workflows.EventWorkflowID(ws.ID, items[i].Key)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			it := s.startEvent(c, ws.ID, items[i].Key, events[i], received)
			it.Index = i
			items[i] = it
		}(i)
	}
	wg.Wait()

	counts := map[string]int{}
	for _, it := range items {
		counts[it.Status]++
	}
	resp := gin.H{"items": items, "accepted": counts[itemAccepted], "duplicate": counts[itemDuplicate],
		"invalid": counts[itemInvalid]}
	if counts[itemUnavailable] > 0 {
		resp["error"] = gin.H{"code": linsync.EUNAVAILABLE,
			"message": fmt.Sprintf("workflow engine did not take %d events; retry the batch", counts[itemUnavailable])}
		c.JSON(http.StatusServiceUnavailable, resp)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// startEvent starts the event's workflow. Its ID comes from the key, so a second start finds it taken: that is
// the dedup. A failed run may be started again by a resubmission.
func (s *Server) startEvent(ctx context.Context, workspaceID, key string, ev linsync.Event, received time.Time) eventItem {
	id := workflows.EventWorkflowID(workspaceID, key)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	_, err := s.temporal.ExecuteWorkflow(ctx, workflows.StartOnce(id, s.cfg.TaskQueue), workflows.FileEvent,
		workflows.EventInput{WorkspaceID: workspaceID, Key: key, Event: ev, ReceivedAt: received,
			LinearMaxAttempts: s.start.LinearMaxAttempts})
	item := eventItem{Key: key, WorkflowID: id}
	switch {
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		item.Status = itemDuplicate
	case err != nil:
		s.log.WarnContext(ctx, "start event workflow failed", "workspace_id", workspaceID, "workflow_id", id, "err", err)
		item.Status, item.WorkflowID = itemUnavailable, ""
	default:
		item.Status = itemAccepted
	}
	return item
}

// handleSimulateRouting shows where an event would go — matched rule, team, labels, priority, dedup key — without
// filing anything. It loads the routing context and routes with the very functions filing uses.
func (s *Server) handleSimulateRouting(c *gin.Context) {
	var raw json.RawMessage
	if err := bindJSON(c, &raw); err != nil {
		s.writeError(c, err)
		return
	}
	_, ev, errs := decodeEvent(raw, "", "simulate", s.now().UTC())
	if len(errs) > 0 {
		s.writeError(c, errs[0].err())
		return
	}
	rc, err := s.db.EventRouting(c, workspaceOf(c).ID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		err = linsync.Errorf(linsync.ECONFLICT, "connect Linear before routing events")
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	d := workflows.RouteEvent(*rc, ev)
	var rule *linsync.RoutingRule
	if d.RuleIndex >= 0 {
		rule = &rc.Rules[d.RuleIndex]
	}
	c.JSON(http.StatusOK, gin.H{"decision": d, "rule": rule})
}

func (s *Server) handleListFiledIssues(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "limit", Message: "limit must be 1 to 100"})
			return
		}
		limit = n
	}
	issues, next, err := s.db.ListFiledIssues(c, workspaceOf(c).ID, limit, c.Query("cursor"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"filed_issues": issues, "next_cursor": next})
}
