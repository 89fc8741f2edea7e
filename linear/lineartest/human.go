package lineartest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Human edits the workspace as a person in Linear's app would; every edit sends webhooks with the human as actor.
type Human struct {
	s     *Server
	email string
}

// Human returns the user with email as an actor for test edits.
func (s *Server) Human(email string) *Human { return &Human{s: s, email: email} }

// do runs fn on the issue as the human, under the server lock.
func (h *Human) do(issueID string, fn func(u *user, is *issue) error) error {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByEmail(h.email)
	if u == nil {
		return fmt.Errorf("act as %s: no such user", h.email)
	}
	is := s.issueByIDOrIdentifier(issueID)
	if is == nil {
		return fmt.Errorf("act as %s: no issue %s", h.email, issueID)
	}
	if err := fn(u, is); err != nil {
		return fmt.Errorf("act as %s on %s: %w", h.email, issueID, err)
	}
	return nil
}

func (h *Human) update(issueID string, in map[string]any) error {
	return h.do(issueID, func(u *user, is *issue) error { return h.s.updateIssue(u, is, in) })
}

// SetState moves the issue to a workflow state, given by id or by type (e.g. "completed").
func (h *Human) SetState(issueID, state string) error {
	return h.do(issueID, func(u *user, is *issue) error {
		id := state
		if st := h.s.stateOfType(is.TeamID, state); st != nil {
			id = st.ID
		}
		return h.s.updateIssue(u, is, map[string]any{"stateId": id})
	})
}

// SetAssignee assigns the issue to the user with email; "" unassigns.
func (h *Human) SetAssignee(issueID, email string) error {
	if email == "" {
		return h.update(issueID, map[string]any{"assigneeId": nil})
	}
	h.s.mu.Lock()
	u := h.s.userByEmail(email)
	h.s.mu.Unlock()
	if u == nil {
		return fmt.Errorf("assign %s: no user %s", issueID, email)
	}
	return h.update(issueID, map[string]any{"assigneeId": u.ID})
}

// SetPriority sets Linear's priority (0 none, 1 urgent … 4 low).
func (h *Human) SetPriority(issueID string, priority int) error {
	return h.update(issueID, map[string]any{"priority": priority})
}

// SetTitle renames the issue.
func (h *Human) SetTitle(issueID, title string) error {
	return h.update(issueID, map[string]any{"title": title})
}

// Comment writes a comment on the issue and returns its id.
func (h *Human) Comment(issueID, body string) (string, error) {
	var id string
	err := h.do(issueID, func(u *user, is *issue) error {
		c, err := h.s.createComment(u, map[string]any{"issueId": is.ID, "body": body})
		if err == nil {
			id = c.ID
		}
		return err
	})
	return id, err
}

// EditComment changes the body of a comment (by id); Linear announces it as Comment "update".
func (h *Human) EditComment(commentID, body string) error {
	return h.onComment(commentID, func(u *user, c *comment) error { return h.s.editComment(u, c, body) })
}

// DeleteComment deletes a comment (by id); Linear announces it as Comment "remove".
func (h *Human) DeleteComment(commentID string) error {
	return h.onComment(commentID, func(u *user, c *comment) error { h.s.deleteComment(u, c); return nil })
}

func (h *Human) onComment(commentID string, fn func(u *user, c *comment) error) error {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByEmail(h.email)
	if u == nil {
		return fmt.Errorf("act as %s: no such user", h.email)
	}
	c := s.comments[commentID]
	if c == nil {
		return fmt.Errorf("act as %s: no comment %s", h.email, commentID)
	}
	if err := fn(u, c); err != nil {
		return fmt.Errorf("act as %s on comment %s: %w", h.email, commentID, err)
	}
	return nil
}

// MoveIssue moves the issue to another team (id or key): it gets that team's next identifier.
func (h *Human) MoveIssue(issueID, team string) error {
	return h.do(issueID, func(u *user, is *issue) error { return h.s.moveIssue(u, is, team) })
}

// DeleteIssue deletes (trashes) the issue; Linear announces it as action "remove".
func (h *Human) DeleteIssue(issueID string) error {
	return h.do(issueID, func(u *user, is *issue) error { h.s.deleteIssue(u, is); return nil })
}

// CreateIssue creates an issue in a team (id or key) and returns its id.
func (h *Human) CreateIssue(team, title string) (string, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByEmail(h.email)
	if u == nil {
		return "", fmt.Errorf("act as %s: no such user", h.email)
	}
	is, err := s.createIssue(u, map[string]any{"teamId": team, "title": title})
	if err != nil {
		return "", fmt.Errorf("create issue as %s: %w", h.email, err)
	}
	return is.ID, nil
}

// humanRequest is the body of POST /_fake/human/{action}.
type humanRequest struct {
	As        string `json:"as"`
	IssueID   string `json:"issueId"`
	State     string `json:"state"`
	Assignee  string `json:"assignee"`
	Priority  int    `json:"priority"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	Team      string `json:"team"`
	CommentID string `json:"commentId"`
}

// serveTestAPI is the HTTP face of the Go test API, for `linsync fake-linear` and curl:
//
//	POST /_fake/human/{set-state|set-assignee|set-priority|set-title|comment|edit-comment|delete-comment|
//	                   move-issue|delete-issue|create-issue}
//	GET  /_fake/state | /_fake/requests | /_fake/deliveries
//	POST /_fake/faults/{ratelimit|status|latency|delivery}
//	GET|POST /_fake/webhooks/retries ({"mode":"identical"|"restamped"})
//	POST /_fake/sink/{name} (any body, recorded) | GET /_fake/sink/{name} ({"messages":[…]})
func (s *Server) serveTestAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_fake/")
	if name, ok := strings.CutPrefix(path, "sink/"); ok {
		s.sinks.serve(w, r, name)
		return
	}
	reply := func(v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Method == http.MethodGet {
		switch path {
		case "state":
			reply(s.snapshot(), nil)
		case "requests":
			reply(s.Requests(), nil)
		case "deliveries":
			reply(s.Deliveries(), nil)
		case "webhooks/retries":
			reply(map[string]RetryMode{"mode": s.WebhookRetries()}, nil)
		default:
			http.NotFound(w, r)
		}
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if action, ok := strings.CutPrefix(path, "human/"); ok {
		var req humanRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(nil, fmt.Errorf("decode body: %w", err))
			return
		}
		reply(s.humanAction(action, req))
		return
	}
	if path == "webhooks/retries" {
		var req struct{ Mode RetryMode }
		err := json.NewDecoder(r.Body).Decode(&req)
		if err == nil {
			err = s.SetWebhookRetries(req.Mode)
		}
		reply(map[string]RetryMode{"mode": s.WebhookRetries()}, err)
		return
	}
	if kind, ok := strings.CutPrefix(path, "faults/"); ok {
		var req struct {
			Count, Status int
			RetryAfterMs  int64 `json:"retryAfterMs"`
			LatencyMs     int64 `json:"latencyMs"`
			DelayMs       int64 `json:"delayMs"`
			Mode          string
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(nil, fmt.Errorf("decode body: %w", err))
			return
		}
		switch kind {
		case "ratelimit":
			s.InjectRateLimit(RateLimit{Requests: req.Count, Status: req.Status, RetryAfter: ms(req.RetryAfterMs)})
		case "status":
			s.InjectStatus(req.Status, req.Count)
		case "latency":
			s.SetLatency(ms(req.LatencyMs))
		case "delivery":
			s.InjectDeliveryFault(DeliveryFault{Mode: DeliveryMode(req.Mode), Count: req.Count, Delay: ms(req.DelayMs)})
		default:
			http.NotFound(w, r)
			return
		}
		reply(map[string]string{"status": "ok"}, nil)
		return
	}
	http.NotFound(w, r)
}

func (s *Server) humanAction(action string, req humanRequest) (any, error) {
	h := s.Human(req.As)
	var err error
	out := map[string]string{"status": "ok"}
	switch action {
	case "set-state":
		err = h.SetState(req.IssueID, req.State)
	case "set-assignee":
		err = h.SetAssignee(req.IssueID, req.Assignee)
	case "set-priority":
		err = h.SetPriority(req.IssueID, req.Priority)
	case "set-title":
		err = h.SetTitle(req.IssueID, req.Title)
	case "comment":
		out["commentId"], err = h.Comment(req.IssueID, req.Body)
	case "edit-comment":
		err = h.EditComment(req.CommentID, req.Body)
	case "delete-comment":
		err = h.DeleteComment(req.CommentID)
	case "move-issue":
		err = h.MoveIssue(req.IssueID, req.Team)
	case "delete-issue":
		err = h.DeleteIssue(req.IssueID)
	case "create-issue":
		out["issueId"], err = h.CreateIssue(req.Team, req.Title)
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	return out, err
}

// snapshot is the whole workspace as JSON-friendly maps, for GET /_fake/state.
func (s *Server) snapshot() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{"organization": s.org}
	var teams, users, issues, comments, labels, hooks []any
	for _, t := range s.teams {
		teams = append(teams, map[string]any{"id": t.ID, "key": t.Key, "name": t.Name, "triageEnabled": t.TriageEnabled,
			"private": t.Private})
	}
	for _, u := range s.users {
		users = append(users, map[string]any{"id": u.ID, "name": u.Name, "email": u.Email})
	}
	for _, is := range s.issues {
		issues = append(issues, s.issueData(is))
	}
	for _, c := range s.comments {
		comments = append(comments, s.commentData(c))
	}
	for _, l := range s.labels {
		labels = append(labels, s.labelData(l))
	}
	for _, wh := range s.webhooks {
		hooks = append(hooks, map[string]any{"id": wh.ID, "url": wh.URL, "enabled": wh.Enabled, "resourceTypes": wh.ResourceTypes})
	}
	out["teams"], out["users"], out["issues"], out["comments"], out["labels"], out["webhooks"] = teams, users, issues, comments, labels, hooks
	return out
}
