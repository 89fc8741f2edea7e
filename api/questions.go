package api

import (
	"context"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/linsync/linsync"
)

// registerQuestionRoutes adds the questions and replies resources (scope questions:write) and their settings
// (admin, since they hold the callback secret).
func (s *Server) registerQuestionRoutes(ws *gin.RouterGroup) {
	qw := s.authorize(linsync.ScopeQuestionsWrite)
	ws.POST("/questions", qw, s.handleCreateQuestion)
	ws.GET("/questions", qw, s.handleListQuestions)
	ws.GET("/questions/:id", qw, s.handleGetQuestion)
	ws.PATCH("/questions/:id", qw, s.handlePatchQuestion)
	ws.DELETE("/questions/:id", qw, s.handleDeleteQuestion)
	ws.POST("/questions/:id/replies", qw, s.handleCreateReply)
	ws.GET("/questions/:id/replies", qw, s.handleListReplies)
	ws.GET("/questions/:id/audit", qw, s.handleQuestionAudit)
	admin := s.authorize(linsync.ScopeAdmin)
	ws.GET("/question-settings", admin, s.handleGetQuestionSettings)
	ws.PUT("/question-settings", admin, s.handlePutQuestionSettings)
}

// questionView is a question as the API shows it.
type questionView struct {
	ID            string     `json:"id"`
	ExternalID    *string    `json:"external_id"`
	Title         string     `json:"title"`
	Body          string     `json:"body"`
	AskerEmail    string     `json:"asker_email"`
	AssigneeEmail string     `json:"assignee_email"`
	Priority      int        `json:"priority"`
	Status        string     `json:"status"`
	TeamID        string     `json:"team_id"`
	Archived      bool       `json:"archived"`
	ArchivedAt    *time.Time `json:"archived_at,omitempty"`
	Linear        *linkView  `json:"linear"`
	Sync          syncView   `json:"sync"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

type linkView struct {
	IssueID    string `json:"issue_id"`
	Identifier string `json:"identifier"`
	URL        string `json:"url"`
	Linked     bool   `json:"linked"`
}

type syncView struct {
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Warning string `json:"warning,omitempty"`
}

func viewQuestion(q *linsync.Question) questionView {
	v := questionView{ID: q.ID, ExternalID: q.ExternalID, Title: q.Field(linsync.FieldTitle), Body: q.Field(linsync.FieldBody),
		AskerEmail: q.AskerEmail, AssigneeEmail: q.Field(linsync.FieldAssignee), Priority: q.Priority(),
		Status: q.Field(linsync.FieldStatus), TeamID: q.TeamID, Archived: q.ArchivedAt != nil, ArchivedAt: q.ArchivedAt,
		Sync: syncView{State: q.SyncState, Reason: q.SyncReason, Warning: q.SyncWarning}, CreatedAt: q.CreatedAt,
		UpdatedAt: q.UpdatedAt}
	if q.IssueCreated || !q.Linked {
		v.Linear = &linkView{IssueID: q.LinearIssueID, Identifier: q.LinearIdentifier, URL: q.LinearURL, Linked: q.Linked}
	}
	return v
}

type createQuestionRequest struct {
	Title         string `json:"title"`
	Body          string `json:"body"`
	AskerEmail    string `json:"asker_email"`
	AssigneeEmail string `json:"assignee_email"`
	Priority      *int   `json:"priority"`
	TeamID        string `json:"team_id"`
	ExternalID    string `json:"external_id"`
}

func unprocessable(field, msg string) error {
	return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: field, Message: msg}
}

func checkEmail(field, v string, required bool) error {
	if v == "" {
		if required {
			return unprocessable(field, field+" is required")
		}
		return nil
	}
	if err := tooLong(maxEmailBytes, field, v); err != nil {
		return err
	}
	if a, err := mail.ParseAddress(v); err != nil || a.Address != strings.TrimSpace(v) {
		return unprocessable(field, field+" must be an email address")
	}
	return nil
}

func checkPriority(p *int) error {
	if p != nil && (*p < 0 || *p > 4) {
		return unprocessable("priority", "priority must be Linear's 0 (none), 1 (urgent), 2 (high), 3 (medium) or 4 (low)")
	}
	return nil
}

// editTime is the app's edit time for per-field versioning, at Postgres's precision so comparisons survive a round trip.
func (s *Server) editTime() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// handleCreateQuestion stores the question (idempotent on external_id) and hands it to its workflow. A retry with
// the same external_id answers 200 with the stored question and signals again, so a create whose signal failed is
// completed by the retry.
func (s *Server) handleCreateQuestion(c *gin.Context) {
	var req createQuestionRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	req.Title = strings.TrimSpace(req.Title)
	var err error
	switch {
	case req.Title == "":
		err = unprocessable("title", "title is required")
	case len(req.Title) > maxTitleBytes:
		err = unprocessable("title", "title must be at most 255 characters")
	default:
		if err = tooLong(maxTextBytes, "body", req.Body); err != nil {
			break
		}
		if err = tooLong(maxExternalIDBytes, "external_id", req.ExternalID); err != nil {
			break
		}
		if err = tooLong(maxRefBytes, "team_id", req.TeamID); err != nil {
			break
		}
		if err = checkEmail("asker_email", req.AskerEmail, true); err == nil {
			if err = checkEmail("assignee_email", req.AssigneeEmail, false); err == nil {
				err = checkPriority(req.Priority)
			}
		}
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	ws := workspaceOf(c)
	conn, err := s.db.FindConnection(c, ws.ID)
	if err != nil {
		if linsync.ErrorCode(err) == linsync.ENOTFOUND {
			err = linsync.Errorf(linsync.ECONFLICT, "connect the workspace to Linear before sending questions")
		}
		s.writeError(c, err)
		return
	}
	in := linsync.QuestionInput{WorkspaceID: ws.ID, ExternalID: req.ExternalID, Title: req.Title, Body: req.Body,
		AskerEmail: req.AskerEmail, AssigneeEmail: req.AssigneeEmail, Priority: conn.DefaultPriority, TeamID: req.TeamID,
		At: s.editTime()}
	if req.Priority != nil {
		in.Priority = *req.Priority
	}
	if in.TeamID == "" {
		in.TeamID = conn.DefaultTeamID
	}
	q, created, err := s.db.CreateQuestion(c, in)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if err := s.signalQuestion(c, q, "question created"); err != nil {
		s.writeError(c, err)
		return
	}
	if created && req.TeamID != "" {
		s.afterQuestionInTeam(c, ws, q.TeamID) // a private team needs its own webhook (team_webhooks.go)
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	c.JSON(status, gin.H{"question": viewQuestion(q)})
}

// signalQuestion hands a stored change to the question's workflow, durably: the hand-off is written to the inbox
// and the dispatcher signals the workflow (starting it when it is not running), or the drainer does when Temporal
// is away. Signals coalesce, since the workflow reads the work from Postgres. Only when the inbox cannot be written
// is the workflow signalled directly; when that fails too the caller gets 503 and its retry (same external_id,
// same values) hands the change off again.
func (s *Server) signalQuestion(ctx context.Context, q *linsync.Question, reason string) error {
	received := s.now().UTC()
	it, err := s.start.QuestionItem(q.WorkspaceID, q.ID, reason, received, received)
	if err == nil {
		if _, err = s.putInbox(ctx, &it); err == nil {
			s.dispatch.offer(it)
			return nil
		}
	}
	s.log.WarnContext(ctx, "inbox write failed; signalling the question directly", "workspace_id", q.WorkspaceID,
		"question_id", q.ID, "err", err)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	if err := s.start.SignalQuestionSync(ctx, q.WorkspaceID, q.ID, reason); err != nil {
		s.log.WarnContext(ctx, "question signal failed", "workspace_id", q.WorkspaceID, "question_id", q.ID, "err", err)
		return linsync.Errorf(linsync.EUNAVAILABLE, "the change is stored but could not be scheduled for Linear; retry the request")
	}
	return nil
}

// question loads the question in the path, 404 for an unknown or malformed id or another workspace's question.
func (s *Server) question(c *gin.Context) (*linsync.Question, bool) {
	id := c.Param("id")
	if uuid.Validate(id) != nil {
		s.writeError(c, linsync.Errorf(linsync.ENOTFOUND, "question not found"))
		return nil, false
	}
	q, err := s.db.FindQuestion(c, workspaceOf(c).ID, id)
	if err != nil {
		s.writeError(c, err)
		return nil, false
	}
	return q, true
}

func (s *Server) handleGetQuestion(c *gin.Context) {
	if q, ok := s.question(c); ok {
		c.JSON(http.StatusOK, gin.H{"question": viewQuestion(q)})
	}
}

func (s *Server) handleListQuestions(c *gin.Context) {
	f := linsync.QuestionFilter{Status: c.Query("status"), AssigneeEmail: c.Query("assignee_email"), Cursor: c.Query("cursor")}
	if f.Status != "" && !validStatus(f.Status) {
		s.writeError(c, &linsync.Error{Code: linsync.EINVALID, Field: "status", Message: "status must be open, in_progress, answered or closed"})
		return
	}
	if v := c.Query("updated_since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.writeError(c, &linsync.Error{Code: linsync.EINVALID, Field: "updated_since", Message: "updated_since must be an RFC 3339 time"})
			return
		}
		f.UpdatedSince = &t
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.writeError(c, &linsync.Error{Code: linsync.EINVALID, Field: "limit", Message: "limit must be between 1 and 100"})
			return
		}
		f.Limit = n
	}
	qs, next, err := s.db.ListQuestions(c, workspaceOf(c).ID, f)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]questionView, 0, len(qs))
	for _, q := range qs {
		out = append(out, viewQuestion(q))
	}
	body := gin.H{"questions": out, "next_cursor": nil}
	if next != "" {
		body["next_cursor"] = next
	}
	c.JSON(http.StatusOK, body)
}

func validStatus(s string) bool {
	switch s {
	case linsync.StatusOpen, linsync.StatusInProgress, linsync.StatusAnswered, linsync.StatusClosed:
		return true
	}
	return false
}

type patchQuestionRequest struct {
	AssigneeEmail *string `json:"assignee_email"`
	Priority      *int    `json:"priority"`
	Status        *string `json:"status"`
	Title         *string `json:"title"`
	Body          *string `json:"body"`
}

// handlePatchQuestion applies the app's edits per field, stamped with the request time, and schedules the write
// to Linear. Edits older than a newer Linear edit lose and are recorded in the audit.
func (s *Server) handlePatchQuestion(c *gin.Context) {
	var req patchQuestionRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	changes := map[string]string{}
	if req.AssigneeEmail != nil {
		if err := checkEmail("assignee_email", *req.AssigneeEmail, false); err != nil {
			s.writeError(c, err)
			return
		}
		changes[linsync.FieldAssignee] = linsync.NormalizeEmail(*req.AssigneeEmail)
	}
	if req.Priority != nil {
		if err := checkPriority(req.Priority); err != nil {
			s.writeError(c, err)
			return
		}
		changes[linsync.FieldPriority] = strconv.Itoa(*req.Priority)
	}
	if req.Status != nil {
		if !validStatus(*req.Status) {
			s.writeError(c, unprocessable("status", "status must be open, in_progress, answered or closed"))
			return
		}
		changes[linsync.FieldStatus] = *req.Status
	}
	if req.Title != nil {
		t := strings.TrimSpace(*req.Title)
		if t == "" || len(t) > 255 {
			s.writeError(c, unprocessable("title", "title must be 1 to 255 characters"))
			return
		}
		changes[linsync.FieldTitle] = t
	}
	if req.Body != nil {
		if err := tooLong(maxTextBytes, "body", *req.Body); err != nil {
			s.writeError(c, err)
			return
		}
		changes[linsync.FieldBody] = *req.Body
	}
	q, ok := s.question(c)
	if !ok {
		return
	}
	q, changed, err := s.db.UpdateQuestionFromApp(c, q.WorkspaceID, q.ID, changes, s.editTime())
	if err != nil {
		s.writeError(c, err)
		return
	}
	if changed || q.SyncState == linsync.SyncPending || q.SyncState == linsync.SyncFailed {
		if err := s.signalQuestion(c, q, "question edited"); err != nil {
			s.writeError(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"question": viewQuestion(q)})
}

// handleDeleteQuestion archives the question. With the workspace's "cancel" policy the question is closed first
// (so the issue is cancelled by the same ordered write path); with "comment" the issue gets a note.
func (s *Server) handleDeleteQuestion(c *gin.Context) {
	q, ok := s.question(c)
	if !ok {
		return
	}
	if q.ArchivedAt == nil {
		settings, err := s.db.QuestionSettings(c, q.WorkspaceID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		if settings.DeletePolicy == linsync.DeletePolicyCancel {
			if _, _, err := s.db.UpdateQuestionFromApp(c, q.WorkspaceID, q.ID,
				map[string]string{linsync.FieldStatus: linsync.StatusClosed}, s.editTime()); err != nil {
				s.writeError(c, err)
				return
			}
		}
		if q, err = s.db.ArchiveQuestion(c, q.WorkspaceID, q.ID, settings.DeletePolicy == linsync.DeletePolicyCancel); err != nil {
			s.writeError(c, err)
			return
		}
	}
	if err := s.signalQuestion(c, q, "question archived"); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"question": viewQuestion(q)})
}

type createReplyRequest struct {
	Body        string `json:"body"`
	AuthorEmail string `json:"author_email"`
	ExternalID  string `json:"external_id"`
}

// replyView is a reply as the API shows it, marked with where it came from.
type replyView struct {
	ID          string     `json:"id"`
	ExternalID  *string    `json:"external_id"`
	Body        string     `json:"body"`
	AuthorEmail string     `json:"author_email"`
	AuthorName  string     `json:"author_name,omitempty"`
	Source      string     `json:"source"`
	Synced      bool       `json:"synced"`
	Deleted     bool       `json:"deleted"`
	CommentID   string     `json:"linear_comment_id"`
	CreatedAt   time.Time  `json:"created_at"`
	DeletedAt   *time.Time `json:"deleted_at,omitempty"`
}

func viewReply(r *linsync.Reply) replyView {
	return replyView{ID: r.ID, ExternalID: r.ExternalID, Body: r.Body, AuthorEmail: r.AuthorEmail, AuthorName: r.AuthorName,
		Source: r.Source, Synced: r.Synced, Deleted: r.DeletedAt != nil, CommentID: r.LinearCommentID,
		CreatedAt: r.CreatedAt, DeletedAt: r.DeletedAt}
}

func (s *Server) handleCreateReply(c *gin.Context) {
	var req createReplyRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if strings.TrimSpace(req.Body) == "" {
		s.writeError(c, unprocessable("body", "body is required"))
		return
	}
	if err := tooLong(maxTextBytes, "body", req.Body); err != nil {
		s.writeError(c, err)
		return
	}
	if err := tooLong(maxExternalIDBytes, "external_id", req.ExternalID); err != nil {
		s.writeError(c, err)
		return
	}
	if err := checkEmail("author_email", req.AuthorEmail, true); err != nil {
		s.writeError(c, err)
		return
	}
	q, ok := s.question(c)
	if !ok {
		return
	}
	r, created, err := s.db.AddReply(c, linsync.ReplyInput{WorkspaceID: q.WorkspaceID, QuestionID: q.ID,
		ExternalID: req.ExternalID, Body: req.Body, AuthorEmail: req.AuthorEmail})
	if err != nil {
		s.writeError(c, err)
		return
	}
	if err := s.signalQuestion(c, q, "reply added"); err != nil {
		s.writeError(c, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	c.JSON(status, gin.H{"reply": viewReply(r)})
}

func (s *Server) handleListReplies(c *gin.Context) {
	q, ok := s.question(c)
	if !ok {
		return
	}
	servePage(s, c, "replies", 50, func(p linsync.Page) ([]replyView, string, error) {
		rs, next, err := s.db.RepliesPage(c, q.ID, p)
		out := make([]replyView, 0, len(rs))
		for i := range rs {
			out = append(out, viewReply(&rs[i]))
		}
		return out, next, err
	})
}

// handleQuestionAudit lists the question's conflicts, stale changes, unlinks and unmatched emails.
func (s *Server) handleQuestionAudit(c *gin.Context) {
	q, ok := s.question(c)
	if !ok {
		return
	}
	servePage(s, c, "audit", 50, func(p linsync.Page) ([]linsync.AuditEntry, string, error) {
		return s.db.AuditPage(c, q.ID, p)
	})
}

type questionSettingsRequest struct {
	StatusMap           map[string]string `json:"status_map"`
	StateForStatus      map[string]string `json:"state_for_status"`
	DeletePolicy        string            `json:"delete_policy"`
	CallbackURL         string            `json:"callback_url"`
	CallbackSecret      *string           `json:"callback_secret"`
	QuestionURLTemplate string            `json:"question_url_template"`
}

var stateTypes = []string{"triage", "backlog", "unstarted", "started", "completed", "canceled", "duplicate"}

func (s *Server) handleGetQuestionSettings(c *gin.Context) {
	st, err := s.db.QuestionSettings(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"settings": st})
}

// handlePutQuestionSettings replaces the workspace's question settings; omitted maps mean the defaults and an
// omitted callback_secret keeps the stored one.
func (s *Server) handlePutQuestionSettings(c *gin.Context) {
	var req questionSettingsRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	for k, v := range req.StatusMap {
		if !contains(stateTypes, k) || !validStatus(v) {
			s.writeError(c, unprocessable("status_map."+k, "status_map maps Linear state types to open, in_progress, answered or closed"))
			return
		}
	}
	for k, v := range req.StateForStatus {
		if !validStatus(k) || !contains(stateTypes, v) {
			s.writeError(c, unprocessable("state_for_status."+k, "state_for_status maps statuses to Linear state types"))
			return
		}
	}
	switch req.DeletePolicy {
	case "", linsync.DeletePolicyComment, linsync.DeletePolicyCancel:
	default:
		s.writeError(c, unprocessable("delete_policy", "delete_policy must be comment or cancel"))
		return
	}
	if err := tooLong(maxURLBytes, "callback_url", req.CallbackURL, "question_url_template", req.QuestionURLTemplate); err != nil {
		s.writeError(c, err)
		return
	}
	if req.CallbackSecret != nil {
		if err := tooLong(maxSecretBytes, "callback_secret", *req.CallbackSecret); err != nil {
			s.writeError(c, err)
			return
		}
	}
	if req.CallbackURL != "" && !strings.HasPrefix(req.CallbackURL, "https://") && !strings.HasPrefix(req.CallbackURL, "http://") {
		s.writeError(c, unprocessable("callback_url", "callback_url must be an http(s) URL"))
		return
	}
	st, err := s.db.SaveQuestionSettings(c, workspaceOf(c).ID, linsync.QuestionSettingsInput{StatusMap: req.StatusMap,
		StateForStatus: req.StateForStatus, DeletePolicy: req.DeletePolicy, CallbackURL: req.CallbackURL,
		CallbackSecret: req.CallbackSecret, QuestionURLTemplate: req.QuestionURLTemplate})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"settings": st})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
