package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/linsync/linsync/linear"
)

// DriftComment is the drift kind of a Linear comment whose webhook was lost and that reconciliation applied.
const DriftComment = "comment"

// ReconcileComment is a comment changed since the watermark on an issue linked to a question, as the Comment
// webhooks Linear would have sent for it.
type ReconcileComment struct {
	CommentID string    `json:"comment_id"`
	IssueID   string    `json:"issue_id"`
	UpdatedAt time.Time `json:"updated_at"`
	// Bodies are Comment webhooks to apply in order through the question sync's own webhook activity: create, then
	// update when the comment was edited, or remove when it was deleted. Each is a no-op when nothing was missed.
	Bodies []json.RawMessage `json:"bodies"`
}

// ReconcileCommentPage is one page of changed comments, narrowed to those on issues linked to questions.
type ReconcileCommentPage struct {
	Comments []ReconcileComment `json:"comments"`
	// Seen counts every comment on the page; Newest is its latest updatedAt (zero when empty).
	Seen   int       `json:"seen"`
	Newest time.Time `json:"newest"`
	Next   string    `json:"next,omitempty"`
}

// ChangedComments fetches one page of the workspace's comments created, edited or deleted after Since (one request
// per page, whatever issues they are on) and keeps those on issues linked to questions, each as the webhooks that
// would have carried it.
func (a *Reconciler) ChangedComments(ctx context.Context, in ReconcilePageInput) (*ReconcileCommentPage, error) {
	lc, conn, err := LinearFor(ctx, a.Linear, in.WorkspaceID)
	if err != nil {
		return nil, err
	}
	first, after := in.pageArgs()
	resp, err := linear.CommentsUpdatedSince(ctx, lc.GQL(), in.Since.UTC().Format(time.RFC3339Nano), first, after)
	if err != nil {
		return nil, a.Metrics.LinearError(ctx, fmt.Errorf("list comments updated since %s: %w", in.Since.Format(time.RFC3339), err))
	}
	nodes := resp.Comments.Nodes
	page := &ReconcileCommentPage{Seen: len(nodes)}
	var issueIDs []string
	for _, n := range nodes {
		if n.UpdatedAt.After(page.Newest) {
			page.Newest = n.UpdatedAt.UTC()
		}
		if n.Issue != nil {
			issueIDs = append(issueIDs, n.Issue.Id)
		}
	}
	questions, _, err := a.DB.LinkedIssues(ctx, in.WorkspaceID, issueIDs)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.Issue == nil || !questions[n.Issue.Id] {
			continue
		}
		rc := ReconcileComment{CommentID: n.Id, IssueID: n.Issue.Id, UpdatedAt: n.UpdatedAt.UTC()}
		actions := []string{"create"}
		switch {
		case n.ArchivedAt != nil:
			actions = append(actions, "remove")
		case n.EditedAt != nil || n.UpdatedAt.After(n.CreatedAt):
			actions = append(actions, "update")
		}
		for _, action := range actions {
			body, err := commentWebhookBody(conn.OrganizationID, action, &n)
			if err != nil {
				return nil, err
			}
			rc.Bodies = append(rc.Bodies, body)
		}
		page.Comments = append(page.Comments, rc)
	}
	if pi := resp.Comments.PageInfo; pi.HasNextPage && pi.EndCursor != nil {
		page.Next = *pi.EndCursor
	}
	return page, nil
}

// commentWebhookBody builds the Comment webhook Linear would have sent for the comment as it is now, with its
// author as the actor, so that linsync's own comments are recognised as echoes as on the webhook path.
func commentWebhookBody(organizationID, action string, n *linear.CommentsUpdatedSinceCommentsCommentConnectionNodesComment) (json.RawMessage, error) {
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	issueID := n.Issue.Id
	d := linear.CommentData{ID: n.Id, Body: n.Body, IssueID: &issueID, CreatedAt: stamp(n.CreatedAt), UpdatedAt: stamp(n.UpdatedAt)}
	if n.Parent != nil {
		p := n.Parent.Id
		d.ParentID = &p
	}
	if n.EditedAt != nil {
		e := stamp(*n.EditedAt)
		d.EditedAt = &e
	}
	var actor *linear.Actor
	if u := n.User; u != nil {
		id := u.Id
		d.UserID = &id
		d.User = &linear.UserRef{ID: id, Name: u.Name, Email: u.Email}
		actor = &linear.Actor{ID: id, Type: "user", Name: u.Name, Email: u.Email}
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode comment %s: %w", n.Id, err)
	}
	at := n.UpdatedAt
	if action == "create" {
		at = n.CreatedAt
	}
	body, err := json.Marshal(linear.Webhook{Action: action, Type: linear.TypeComment, CreatedAt: stamp(at),
		OrganizationID: organizationID, WebhookTimestamp: linear.Millis(at.UnixMilli()), Actor: actor, Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode comment webhook %s: %w", n.Id, err)
	}
	return body, nil
}
