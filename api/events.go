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
	// batchStartConcurrency bounds the workflow starts one batch runs at once when it cannot use the inbox.
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
// a resubmission answers 200 duplicate and starts nothing. An accepted event is in the inbox before it is answered.
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
	items := []eventItem{{Key: key}}
	s.acceptEvents(c, workspaceOf(c).ID, items, []linsync.Event{ev}, received)
	item := items[0]
	switch item.Status {
	case itemAccepted:
		c.JSON(http.StatusAccepted, item)
	case itemDuplicate:
		c.JSON(http.StatusOK, item)
	default:
		s.writeError(c, linsync.Errorf(linsync.EUNAVAILABLE, "neither the inbox nor the workflow engine took the event; retry later"))
	}
}

// handlePostEventBatch accepts up to MaxEventBatch events and answers each one: accepted, duplicate or invalid
// (with its field errors). When some could be persisted nowhere it answers 503 with the items, so the sender
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
		}
	}
	s.acceptEvents(c, ws.ID, items, events, received)

	counts := map[string]int{}
	for _, it := range items {
		counts[it.Status]++
	}
	resp := gin.H{"items": items, "accepted": counts[itemAccepted], "duplicate": counts[itemDuplicate],
		"invalid": counts[itemInvalid]}
	if counts[itemUnavailable] > 0 {
		resp["error"] = gin.H{"code": linsync.EUNAVAILABLE,
			"message": fmt.Sprintf("neither the inbox nor the workflow engine took %d events; retry the batch", counts[itemUnavailable])}
		c.JSON(http.StatusServiceUnavailable, resp)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// acceptEvents persists the items without a status yet (events[i] is item i's event) and sets their status:
// accepted when written to the inbox (in one statement for the whole batch, which is also the dedup by
// idempotency key) and handed to the dispatcher, duplicate when the key was there or handled already. When
// Postgres does not answer, each event's workflow is started directly, a few at a time: its ID comes from the key,
// so a second start finds it taken.
func (s *Server) acceptEvents(ctx context.Context, workspaceID string, items []eventItem, events []linsync.Event, received time.Time) {
	var todo []linsync.InboxItem
	trace := traceParent(ctx)
	for i := range items {
		if items[i].Status != "" {
			continue
		}
		it, err := s.start.EventItem(workspaceID, items[i].Key, events[i], received, received.Add(s.cfg.RetryHorizon))
		if err != nil {
			s.log.ErrorContext(ctx, "encode event failed", "workspace_id", workspaceID, "err", err)
			items[i].Status = itemUnavailable
			continue
		}
		it.TraceContext, it.DrainAfter = trace, received.Add(s.dispatch.wait(len(items)))
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout/2)
	put, err := s.db.PutInboxEvents(pctx, todo)
	cancel()
	if err == nil {
		byKey := map[string]linsync.InboxItem{}
		for _, it := range todo {
			byKey[it.Key] = it
		}
		for i := range items {
			it, pending := byKey[items[i].Key]
			if items[i].Status != "" || !pending {
				continue
			}
			items[i].Status, items[i].WorkflowID = itemDuplicate, it.WorkflowID
			if id, ok := put[it.Key]; ok {
				it.ID = id
				s.dispatch.offer(it)
				items[i].Status = itemAccepted
			}
		}
		return
	}
	s.log.WarnContext(ctx, "inbox write failed; starting events directly", "workspace_id", workspaceID, "events", len(todo), "err", err)
	sem := make(chan struct{}, batchStartConcurrency)
	var wg sync.WaitGroup
	for i := range items {
		if items[i].Status != "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			it := s.startEvent(ctx, workspaceID, items[i].Key, events[i], received)
			it.Index = items[i].Index
			items[i] = it
		}(i)
	}
	wg.Wait()
}

// startEvent starts the event's workflow without the inbox. Its ID comes from the key, so a second start finds
// it taken: that is the dedup. Its first activity claims the key in Postgres, so a key handled already is a
// duplicate there too.
func (s *Server) startEvent(ctx context.Context, workspaceID, key string, ev linsync.Event, received time.Time) eventItem {
	id := workflows.EventWorkflowID(workspaceID, key)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	_, err := s.temporal.ExecuteWorkflow(ctx, workflows.StartOnce(id, s.cfg.TaskQueue), workflows.FileEvent,
		s.start.EventInput(workspaceID, key, ev, received))
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
