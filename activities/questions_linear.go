package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

// LinearChange is a verified Linear webhook for the question sync to apply.
type LinearChange struct {
	WorkspaceID string          `json:"workspace_id"`
	DeliveryID  string          `json:"delivery_id"`
	Body        json.RawMessage `json:"body"`
}

// LinearChangeResult is what applying a Linear change did: the delivery outcome and detail to record, the question
// it touched, whether the app must hear of it (Changed) and whether Linear must be written back (NeedsPush).
type LinearChangeResult struct {
	Outcome    string   `json:"outcome"`
	Detail     string   `json:"detail"`
	QuestionID string   `json:"question_id,omitempty"`
	ExternalID string   `json:"external_id,omitempty"`
	Changed    []string `json:"changed,omitempty"`
	NeedsPush  bool     `json:"needs_push,omitempty"`
}

// ErrTypeBadWebhook marks a webhook body the question sync cannot read; retrying cannot help.
const ErrTypeBadWebhook = "LinearWebhookUnreadable"

func ignored(detail string) *LinearChangeResult {
	return &LinearChangeResult{Outcome: linsync.OutcomeIgnored, Detail: detail}
}

// decodeChange decodes the webhook and says whether it is linsync's own write coming back (the actor is the
// connection's Linear user): the second echo guard, after our own ids and before equal values.
func (a *Questions) decodeChange(ctx context.Context, ch LinearChange) (*linear.Webhook, *linsync.LinearConnection, bool, error) {
	w, err := linear.DecodeWebhook(ch.Body)
	if err != nil {
		return nil, nil, false, temporal.NewNonRetryableApplicationError("decode webhook", ErrTypeBadWebhook, err)
	}
	conn, err := a.DB.FindConnection(ctx, ch.WorkspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return w, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	echo := w.Actor != nil && conn.ActorUserID != "" && w.Actor.ID == conn.ActorUserID
	return w, conn, echo, nil
}

// ApplyLinearIssue applies an Issue webhook to the linked question from the payload alone: no request to Linear
// unless an assignee's email is missing from the payload and from linsync's table of seen users.
func (a *Questions) ApplyLinearIssue(ctx context.Context, ch LinearChange) (*LinearChangeResult, error) {
	w, conn, echo, err := a.decodeChange(ctx, ch)
	switch {
	case err != nil:
		return nil, err
	case w.Issue == nil:
		return ignored("not an issue"), nil
	case conn == nil:
		return ignored("workspace has no Linear connection"), nil
	case w.Action == "create":
		// Issues of questions are created by linsync with ids it chose; a human's new issue is not a question.
		return ignored("issue create: questions' issues are created by linsync"), nil
	case echo:
		return ignored("echo: change made by linsync's own Linear user"), nil
	}
	settings, err := a.DB.QuestionSettings(ctx, ch.WorkspaceID)
	if err != nil {
		return nil, err
	}
	d := w.Issue
	st := linsync.LinearIssueState{IssueID: d.ID, Identifier: d.Identifier, URL: d.URL, TeamID: d.TeamID,
		Removed: w.Action == "remove", Values: map[string]string{
			linsync.FieldTitle:    d.Title,
			linsync.FieldPriority: strconv.Itoa(int(d.Priority)),
		}}
	st.Edited = editedFields(w.UpdatedFrom)
	// An actor that is not linsync's user is someone else; a webhook without one may be our own write.
	st.ByOther = w.Actor != nil && w.Actor.ID != ""
	if st.TeamID == "" && d.Team != nil {
		st.TeamID = d.Team.ID
	}
	if d.State != nil {
		if s := settings.StatusOf(d.State.Type); s != "" {
			st.Values[linsync.FieldStatus] = s
		}
	}
	email, err := a.assigneeEmail(ctx, ch.WorkspaceID, d)
	if err != nil {
		return nil, err
	}
	st.Values[linsync.FieldAssignee] = email
	if st.UpdatedAt, err = changeTime(d.UpdatedAt, w); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("read issue updatedAt", ErrTypeBadWebhook, err)
	}
	res, err := a.DB.ApplyLinearIssue(ctx, ch.WorkspaceID, st)
	if err != nil {
		return nil, err
	}
	return applyResult(res, w.Action), nil
}

// editedFields maps the keys of a webhook's updatedFrom to the question fields they edit.
func editedFields(updatedFrom json.RawMessage) map[string]bool {
	var from map[string]json.RawMessage
	if len(updatedFrom) == 0 || json.Unmarshal(updatedFrom, &from) != nil {
		return nil
	}
	out := map[string]bool{}
	for key, field := range map[string]string{"stateId": linsync.FieldStatus, "assigneeId": linsync.FieldAssignee,
		"priority": linsync.FieldPriority, "title": linsync.FieldTitle} {
		if _, ok := from[key]; ok {
			out[field] = true
		}
	}
	return out
}

func applyResult(res *linsync.LinearApply, action string) *LinearChangeResult {
	if !res.Found {
		return ignored("not linked to a question")
	}
	out := &LinearChangeResult{Outcome: linsync.OutcomeProcessed, QuestionID: res.QuestionID, ExternalID: res.ExternalID,
		Changed: res.Changed, NeedsPush: res.NeedsPush}
	switch {
	case res.Unlinked:
		out.Detail, out.Changed = "question unlinked: issue deleted in Linear", []string{"linked"}
	case len(res.Changed) > 0:
		out.Detail = "question " + res.QuestionID + " changed: " + strings.Join(res.Changed, ", ")
	default:
		out.Detail = "question " + res.QuestionID + ": no change (" + action + ")"
	}
	if res.Audits > 0 {
		out.Detail += fmt.Sprintf("; %d audit entries", res.Audits)
	}
	return out
}

// assigneeEmail is the issue's assignee's email: from the payload, else from users linsync has seen, else (older
// payloads only) one user look-up in Linear, remembered.
func (a *Questions) assigneeEmail(ctx context.Context, workspaceID string, d *linear.IssueData) (string, error) {
	id := ""
	if d.AssigneeID != nil {
		id = *d.AssigneeID
	}
	if d.Assignee != nil {
		id = d.Assignee.ID
		if d.Assignee.Email != "" {
			return linsync.NormalizeEmail(d.Assignee.Email), a.DB.RememberLinearUser(ctx, workspaceID, id, d.Assignee.Email, d.Assignee.Name)
		}
	}
	if id == "" {
		return "", nil
	}
	if email, err := a.DB.LinearUserEmail(ctx, workspaceID, id); err != nil || email != "" {
		return email, err
	}
	lc, _, err := LinearFor(ctx, a.Linear, workspaceID)
	if err != nil {
		return "", err
	}
	resp, err := linear.User(ctx, lc.GQL(), id)
	if err != nil {
		return "", a.Metrics.LinearError(ctx, fmt.Errorf("look up assignee %s: %w", id, err))
	}
	return linsync.NormalizeEmail(resp.User.Email), a.DB.RememberLinearUser(ctx, workspaceID, id, resp.User.Email, resp.User.Name)
}

// changeTime is when Linear made the change: the entity's updatedAt, else the event's createdAt.
func changeTime(updatedAt string, w *linear.Webhook) (time.Time, error) {
	for _, s := range []string{updatedAt, w.CreatedAt} {
		if s != "" {
			return time.Parse(time.RFC3339Nano, s)
		}
	}
	if w.WebhookTimestamp > 0 {
		return time.UnixMilli(int64(w.WebhookTimestamp)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("the webhook carries no time")
}

// ApplyLinearComment turns a comment written in Linear into a reply (create), or follows its edit or removal.
// Comments linsync wrote are recognised by their ids, which are stored on the replies before they are created.
func (a *Questions) ApplyLinearComment(ctx context.Context, ch LinearChange) (*LinearChangeResult, error) {
	w, conn, echo, err := a.decodeChange(ctx, ch)
	switch {
	case err != nil:
		return nil, err
	case w.Comment == nil || w.Comment.IssueID == nil:
		return ignored("not a comment on an issue"), nil
	case conn == nil:
		return ignored("workspace has no Linear connection"), nil
	case echo:
		return ignored("echo: comment by linsync's own Linear user"), nil
	}
	c := w.Comment
	var res *linsync.LinearApply
	switch w.Action {
	case "create":
		author, name := "", ""
		if c.User != nil {
			author, name = c.User.Email, c.User.Name
			if err := a.DB.RememberLinearUser(ctx, ch.WorkspaceID, c.User.ID, c.User.Email, c.User.Name); err != nil {
				return nil, err
			}
		}
		if author == "" && c.UserID != nil {
			if author, err = a.DB.LinearUserEmail(ctx, ch.WorkspaceID, *c.UserID); err != nil {
				return nil, err
			}
		}
		at, err := changeTime(c.CreatedAt, w)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError("read comment createdAt", ErrTypeBadWebhook, err)
		}
		var created bool
		res, created, err = a.DB.AddLinearComment(ctx, ch.WorkspaceID, linsync.LinearComment{CommentID: c.ID,
			IssueID: *c.IssueID, Body: c.Body, AuthorEmail: author, AuthorName: name, CreatedAt: at})
		if err != nil {
			return nil, err
		}
		if res.Found && !created {
			return ignored("comment already known (linsync's own or a duplicate)"), nil
		}
	case "update", "remove":
		if res, err = a.DB.UpdateLinearComment(ctx, ch.WorkspaceID, c.ID, c.Body, w.Action == "remove"); err != nil {
			return nil, err
		}
	default:
		return ignored("comment action " + w.Action), nil
	}
	return applyResult(res, w.Action), nil
}

// Notification tells the app that Linear changed a question.
type Notification struct {
	WorkspaceID string   `json:"workspace_id"`
	QuestionID  string   `json:"question_id"`
	ExternalID  string   `json:"external_id,omitempty"`
	DeliveryID  string   `json:"delivery_id"`
	Changed     []string `json:"changed"`
}

// ErrTypeCallbackRefused marks a callback the app answered with a client error; it is retried like any failure
// (the app may be mid-deploy) until the retry policy gives up.
const ErrTypeCallbackRefused = "CallbackRefused"

// NotifyApp posts a signed callback to the workspace's app, Standard Webhooks style: headers webhook-id (stable
// across retries, so the app can deduplicate), webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>". Nothing is sent when no callback is configured.
func (a *Questions) NotifyApp(ctx context.Context, n Notification) error {
	url, secret, err := a.DB.CallbackTarget(ctx, n.WorkspaceID)
	if err != nil || url == "" {
		return err
	}
	q, err := a.DB.QuestionByID(ctx, n.QuestionID)
	if err != nil {
		return err
	}
	msgID := "msg_" + uuid.NewSHA1(commentNamespace, []byte(n.DeliveryID+"|"+n.QuestionID)).String()
	fields := map[string]string{}
	for _, f := range linsync.SyncedFields {
		fields[f] = q.Field(f)
	}
	body, err := json.Marshal(map[string]any{
		"type": "question.updated", "source": "linear", "question_id": q.ID, "external_id": q.ExternalID,
		"changed": n.Changed, "fields": fields, "sync_state": q.SyncState, "linked": q.Linked,
		"linear_identifier": q.LinearIdentifier, "linear_url": q.LinearURL,
	})
	if err != nil {
		return fmt.Errorf("encode callback: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError("build callback request", ErrTypeCallbackRefused, RedactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range linsync.StandardWebhookHeaders(secret, msgID, time.Now(), body) {
		req.Header.Set(k, v)
	}
	hc := a.CallbackClient
	if hc == nil {
		hc = PublicHTTPClient(false, 10*time.Second)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post callback for question %s: %w", q.ID, RedactURLError(err))
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return temporal.NewApplicationError(fmt.Sprintf("callback answered %d", resp.StatusCode), ErrTypeCallbackRefused)
	}
	return nil
}

// SignCallback is the Standard Webhooks signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
// (linsync.SignStandardWebhook, the signer of every outbound message).
func SignCallback(secret []byte, id, timestamp string, body []byte) string {
	return linsync.SignStandardWebhook(secret, id, timestamp, body)
}
