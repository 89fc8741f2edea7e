package activities

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Questions syncs Q&A questions and replies with Linear issues and comments.
type Questions struct {
	DB     *postgres.DB
	Linear *linear.Clients
	// Sync asks the question's entity workflow to write pending changes to Linear (signal-with-start); set by
	// worker.NewActivities to workflows.Starter.QuestionSyncer, which activities cannot import.
	Sync func(ctx context.Context, workspaceID, questionID string) error
	// AfterLinearWrite, when set, runs after every successful write to Linear and before its result is stored; an
	// error fails the attempt there. It is the seam tests use to prove a retried write creates nothing twice; nil in
	// production.
	AfterLinearWrite func(ctx context.Context, op string) error
	// DeadLetters, when set, receives questions whose push failed for good (see RecordSyncFailure).
	DeadLetters *DeadLetters
	// Metrics counts the retries of Linear calls; nil counts nothing.
	Metrics *Metrics
	// CallbackClient posts the signed callbacks to the Q&A app; nil means PublicHTTPClient(false, 10s), which
	// refuses private addresses.
	CallbackClient *http.Client
}

// QuestionRef names a question to an activity.
type QuestionRef struct {
	WorkspaceID string `json:"workspace_id"`
	QuestionID  string `json:"question_id"`
}

// ReplyRef names an app reply to write to Linear.
type ReplyRef struct {
	WorkspaceID string `json:"workspace_id"`
	QuestionID  string `json:"question_id"`
	ReplyID     string `json:"reply_id"`
}

// commentNamespace seeds the ids of comments linsync derives rather than stores (unmatched-email notes, archive
// notes): the same note for the same question always gets the same id, so a retry conflicts instead of doubling.
var commentNamespace = uuid.MustParse("6f1f7f3e-3c0b-4b52-9f1a-2f7d8c4e9a21")

// QuestionSyncWork reads what a question still needs from Linear.
func (a *Questions) QuestionSyncWork(ctx context.Context, ref QuestionRef) (*linsync.SyncWork, error) {
	return a.DB.QuestionSyncWork(ctx, ref.QuestionID)
}

func (a *Questions) afterWrite(ctx context.Context, op string) error {
	if a.AfterLinearWrite == nil {
		return nil
	}
	return a.AfterLinearWrite(ctx, op)
}

// EnsureIssue files the question's issue with the id chosen when the question was stored: one issueCreate, with the
// team, states, labels and assignee from the client's caches. A retry after Linear created it gets "conflict" and
// reads the issue back instead of filing a second one.
func (a *Questions) EnsureIssue(ctx context.Context, ref QuestionRef) error {
	q, err := a.DB.QuestionByID(ctx, ref.QuestionID)
	if err != nil {
		return err
	}
	if q.IssueCreated || !q.Linked {
		return nil
	}
	lc, conn, err := LinearFor(ctx, a.Linear, ref.WorkspaceID)
	if err != nil {
		return err
	}
	settings, err := a.DB.QuestionSettings(ctx, ref.WorkspaceID)
	if err != nil {
		return err
	}
	team, err := lc.Team(ctx, q.TeamID)
	if err != nil {
		return a.Metrics.LinearError(ctx, err)
	}
	in := linear.IssueCreateInput{ID: q.LinearIssueID, TeamID: team.Id, Title: q.Field(linsync.FieldTitle),
		Description: describe(q, settings), Priority: q.Priority()}
	if team.TriageEnabled {
		if st, ok := team.StateByType("triage"); ok {
			in.StateID = st.Id
		}
	}
	if len(conn.DefaultLabels) > 0 {
		if in.LabelIDs, err = lc.LabelIDs(ctx, team.Id, conn.DefaultLabels); err != nil {
			return a.Metrics.LinearError(ctx, err)
		}
	}
	assignee := q.Field(linsync.FieldAssignee)
	matched := true
	if assignee != "" {
		u, err := a.userByEmail(ctx, lc, ref.WorkspaceID, assignee)
		if err != nil {
			return err
		}
		if matched = u != nil; matched {
			in.AssigneeID = u.Id
		}
	}
	issue, err := CreateOrFetch(ctx,
		func(ctx context.Context) (*linear.IssueFields, error) {
			resp, err := linear.IssueCreate(ctx, lc.GQL(), in)
			if err != nil || resp.IssueCreate.Issue == nil {
				return nil, err
			}
			return &resp.IssueCreate.Issue.IssueFields, nil
		},
		func(ctx context.Context) (*linear.IssueFields, error) {
			resp, err := linear.Issue(ctx, lc.GQL(), in.ID)
			if err != nil {
				return nil, err
			}
			return &resp.Issue.IssueFields, nil
		})
	if err != nil {
		return a.Metrics.LinearError(ctx, fmt.Errorf("create issue for question %s: %w", q.ID, err))
	}
	if issue == nil {
		return fmt.Errorf("create issue for question %s: Linear answered without the issue", q.ID)
	}
	if err := a.afterWrite(ctx, "IssueCreate"); err != nil {
		return err
	}
	linearAssignee := ""
	if issue.Assignee != nil {
		linearAssignee = linsync.NormalizeEmail(issue.Assignee.Email)
	}
	linearStatus := settings.StatusOf(issue.State.Type)
	linearPriority := strconv.Itoa(int(issue.Priority))
	pushed := map[string]linsync.PushedField{
		// The status pushed is the one Linear chose (triage or the team's default); a different status set in the
		// app meanwhile stays dirty and is written next.
		linsync.FieldStatus:   {Value: linearStatus, LinearValue: linearStatus},
		linsync.FieldAssignee: {Value: assignee, LinearValue: linearAssignee},
		linsync.FieldPriority: {Value: strconv.Itoa(in.Priority), LinearValue: linearPriority},
		linsync.FieldTitle:    {Value: in.Title, LinearValue: issue.Title},
		linsync.FieldBody:     {Value: q.Field(linsync.FieldBody), LinearValue: q.Field(linsync.FieldBody)},
	}
	link := linsync.IssueLink{Identifier: issue.Identifier, URL: issue.Url, TeamID: issue.Team.Id}
	if err := a.DB.RecordIssueCreated(ctx, q.ID, link, pushed, issue.UpdatedAt); err != nil {
		return err
	}
	if !matched {
		return a.noteUnmatched(ctx, lc, q, assignee)
	}
	return nil
}

// userByEmail finds the active Linear user with email through the client's cache, remembering the match.
func (a *Questions) userByEmail(ctx context.Context, lc *linear.Client, workspaceID, email string) (*linear.UserFields, error) {
	u, err := lc.UserByEmail(ctx, email)
	if err != nil {
		return nil, a.Metrics.LinearError(ctx, err)
	}
	if u != nil {
		if err := a.DB.RememberLinearUser(ctx, workspaceID, u.Id, u.Email, u.Name); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// noteUnmatched says, on the issue and on the question, that an assignee email matches no Linear user: the issue
// stays unassigned, never silently.
func (a *Questions) noteUnmatched(ctx context.Context, lc *linear.Client, q *linsync.Question, email string) error {
	id := uuid.NewSHA1(commentNamespace, []byte(q.ID+"|unmatched|"+email)).String()
	body := fmt.Sprintf("linsync could not assign this issue: no active Linear user has the email `%s` that the "+
		"Q&A app named as assignee. It stays unassigned until the app names someone with a Linear account.", email)
	if err := a.createComment(ctx, lc, linear.CommentCreateInput{ID: id, IssueID: q.LinearIssueID, Body: body,
		DoNotSubscribeToIssue: true}); err != nil {
		return err
	}
	warning := fmt.Sprintf("assignee %s matches no active Linear user; the issue is left unassigned", email)
	return a.DB.SetSyncWarning(ctx, q.ID, warning, linsync.AuditEntry{Kind: linsync.AuditUnmatchedEmail,
		Field: linsync.FieldAssignee, Detail: map[string]any{"email": email, "comment_id": id}})
}

// createComment creates a comment with a client-chosen id; a conflict means an earlier attempt created it.
func (a *Questions) createComment(ctx context.Context, lc *linear.Client, in linear.CommentCreateInput) error {
	_, err := CreateOrFetch(ctx,
		func(ctx context.Context) (string, error) {
			_, err := linear.CommentCreate(ctx, lc.GQL(), in)
			return in.ID, err
		},
		func(ctx context.Context) (string, error) {
			_, err := linear.Comment(ctx, lc.GQL(), in.ID)
			return in.ID, err
		})
	if err != nil {
		return a.Metrics.LinearError(ctx, fmt.Errorf("create comment %s on issue %s: %w", in.ID, in.IssueID, err))
	}
	return a.afterWrite(ctx, "CommentCreate")
}

// PushFields writes every field the app changed and Linear lacks in one issueUpdate, and reports how many
// requests it sent (0 or 1, plus one comment when an assignee email matches nobody).
func (a *Questions) PushFields(ctx context.Context, ref QuestionRef) (int, error) {
	q, err := a.DB.QuestionByID(ctx, ref.QuestionID)
	if err != nil {
		return 0, err
	}
	if !q.IssueCreated || !q.Linked || !q.NeedsPush() {
		return 0, nil
	}
	lc, _, err := LinearFor(ctx, a.Linear, ref.WorkspaceID)
	if err != nil {
		return 0, err
	}
	settings, err := a.DB.QuestionSettings(ctx, ref.WorkspaceID)
	if err != nil {
		return 0, err
	}
	var in linear.IssueUpdateInput
	send := false
	pushed := map[string]linsync.PushedField{}
	unmatched := ""
	for _, name := range linsync.SyncedFields {
		f := q.Fields[name]
		if !f.Dirty() {
			continue
		}
		v := f.Value
		switch name {
		case linsync.FieldStatus:
			typ, ok := settings.StateForStatus[v]
			if !ok {
				return 0, fmt.Errorf("push status of question %s: no Linear state type configured for %q", q.ID, v)
			}
			st, err := lc.State(ctx, q.TeamID, typ)
			if err != nil {
				return 0, a.Metrics.LinearError(ctx, err)
			}
			in.StateID, send = linear.Value(st.Id), true
			pushed[name] = linsync.PushedField{Value: v, LinearValue: settings.StatusOf(st.Type)}
		case linsync.FieldAssignee:
			u := (*linear.UserFields)(nil)
			if v != "" {
				if u, err = a.userByEmail(ctx, lc, ref.WorkspaceID, v); err != nil {
					return 0, err
				}
			}
			switch {
			case u != nil:
				in.AssigneeID, send = linear.Value(u.Id), true
				pushed[name] = linsync.PushedField{Value: v, LinearValue: linsync.NormalizeEmail(u.Email)}
			case f.LinearValue != "":
				in.AssigneeID, send = linear.Clear[string](), true
				pushed[name] = linsync.PushedField{Value: v, LinearValue: ""}
			default:
				pushed[name] = linsync.PushedField{Value: v, LinearValue: ""}
			}
			if u == nil && v != "" {
				unmatched = v
			}
		case linsync.FieldPriority:
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("push priority of question %s: %w", q.ID, err)
			}
			in.Priority, send = linear.Value(n), true
			pushed[name] = linsync.PushedField{Value: v, LinearValue: v}
		case linsync.FieldTitle:
			in.Title, send = linear.Value(v), true
			pushed[name] = linsync.PushedField{Value: v, LinearValue: v}
		case linsync.FieldBody:
			in.Description, send = linear.Value(describe(q, settings)), true
			pushed[name] = linsync.PushedField{Value: v, LinearValue: v}
		}
	}
	requests := 0
	var at time.Time // zero: nothing was sent (see linsync.MergePush)
	if send {
		// The values go to Postgres before the call, like the pre-chosen ids: the webhook of this write may arrive
		// before RecordPush, and without an actor only these values tell it is an echo.
		if err := a.DB.BeginPush(ctx, q.ID, pushed, time.Now()); err != nil {
			return 0, err
		}
		resp, err := linear.IssueUpdate(ctx, lc.GQL(), q.LinearIssueID, in)
		if err != nil {
			return 0, a.Metrics.LinearError(ctx, fmt.Errorf("update issue of question %s: %w", q.ID, err))
		}
		requests++
		if err := a.afterWrite(ctx, "IssueUpdate"); err != nil {
			return 0, err
		}
		if resp.IssueUpdate.Issue != nil {
			at = resp.IssueUpdate.Issue.UpdatedAt
		}
	}
	if err := a.DB.RecordPush(ctx, q.ID, pushed, at); err != nil {
		return 0, err
	}
	if _, ok := pushed[linsync.FieldAssignee]; ok {
		if unmatched != "" {
			requests++
			return requests, a.noteUnmatched(ctx, lc, q, unmatched)
		}
		if q.SyncWarning != "" {
			return requests, a.DB.ClearSyncWarning(ctx, q.ID)
		}
	}
	return requests, nil
}

// PushReply writes an app reply as a comment with the id chosen when the reply was stored, naming its author.
func (a *Questions) PushReply(ctx context.Context, ref ReplyRef) error {
	r, err := a.DB.FindReply(ctx, ref.ReplyID)
	if err != nil {
		return err
	}
	if r.Synced || r.Source != linsync.SourceApp {
		return nil
	}
	q, err := a.DB.QuestionByID(ctx, ref.QuestionID)
	if err != nil {
		return err
	}
	if !q.IssueCreated || !q.Linked {
		return nil
	}
	lc, _, err := LinearFor(ctx, a.Linear, ref.WorkspaceID)
	if err != nil {
		return err
	}
	body := fmt.Sprintf("**%s** replied in the Q&A app:\n\n%s", r.AuthorEmail, r.Body)
	if err := a.createComment(ctx, lc, linear.CommentCreateInput{ID: r.LinearCommentID, IssueID: q.LinearIssueID,
		Body: body, DoNotSubscribeToIssue: true}); err != nil {
		return err
	}
	return a.DB.MarkReplySynced(ctx, r.ID)
}

// ArchiveOnLinear applies the workspace's delete policy to an archived question's issue. The cancel policy moved
// the question to closed when it was archived, so PushFields already cancelled the issue; the comment policy
// leaves the issue where it is with a note.
func (a *Questions) ArchiveOnLinear(ctx context.Context, ref QuestionRef) error {
	q, err := a.DB.QuestionByID(ctx, ref.QuestionID)
	if err != nil {
		return err
	}
	if q.ArchivedAt == nil || q.ArchiveSynced || !q.IssueCreated || !q.Linked {
		return nil
	}
	lc, _, err := LinearFor(ctx, a.Linear, ref.WorkspaceID)
	if err != nil {
		return err
	}
	id := uuid.NewSHA1(commentNamespace, []byte(q.ID+"|archived")).String()
	if err := a.createComment(ctx, lc, linear.CommentCreateInput{ID: id, IssueID: q.LinearIssueID,
		Body:                  "This question was archived in the Q&A app; linsync no longer syncs changes from the app.",
		DoNotSubscribeToIssue: true}); err != nil {
		return err
	}
	return a.DB.MarkArchiveSynced(ctx, q.ID)
}

// FinishSync records the question's sync state after a pass: synced, or pending when work is left.
func (a *Questions) FinishSync(ctx context.Context, ref QuestionRef) (string, error) {
	return a.DB.FinishSync(ctx, ref.QuestionID)
}

// MarkSyncFailed records why the question could not be written to Linear and how many attempts at Linear the failed
// pass made (below 1 counts as one).
func (a *Questions) MarkSyncFailed(ctx context.Context, ref QuestionRef, reason string, attempts int) error {
	return a.DB.MarkSyncFailed(ctx, ref.QuestionID, reason, max(attempts, 1))
}

// RequestSync asks the question's workflow to write what a Linear change left for Linear (a newer app edit that
// a late webhook must not overwrite).
func (a *Questions) RequestSync(ctx context.Context, ref QuestionRef) error {
	if a.Sync == nil {
		activity.GetLogger(ctx).Warn("question sync requested but no syncer is configured", "question_id", ref.QuestionID)
		return nil
	}
	return a.Sync(ctx, ref.WorkspaceID, ref.QuestionID)
}

// ResyncQuestion asks a question's workflow to write what Linear still lacks, for reconciliation of questions left
// pending or failed (postgres.DB.UnsyncedQuestions). It is idempotent: signals coalesce in the workflow, which reads
// the work from Postgres, and a question with nothing to write (synced, unlinked, or of another workspace) is not
// signalled at all.
func (a *Questions) ResyncQuestion(ctx context.Context, workspaceID, questionID string) error {
	q, err := a.DB.FindQuestion(ctx, workspaceID, questionID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return temporal.NewNonRetryableApplicationError("question not found", ErrTypeQuestionNotFound, err)
	}
	if err != nil {
		return err
	}
	if !q.Linked || (q.SyncState != linsync.SyncPending && q.SyncState != linsync.SyncFailed) {
		return nil
	}
	if a.Sync == nil {
		return temporal.NewNonRetryableApplicationError("no question syncer is configured", ErrTypeNoQuestionSyncer, nil)
	}
	if err := a.Sync(ctx, workspaceID, questionID); err != nil {
		return fmt.Errorf("resync question %s: %w", questionID, err)
	}
	return nil
}

// Error types of ResyncQuestion: the question does not exist in the workspace; the worker was built without
// Questions.Sync.
const (
	ErrTypeQuestionNotFound = "QuestionNotFound"
	ErrTypeNoQuestionSyncer = "NoQuestionSyncer"
)

// describe renders the issue description: the question, who asked, and the link back to the app.
func describe(q *linsync.Question, s *linsync.QuestionSettings) string {
	var b strings.Builder
	b.WriteString(q.Field(linsync.FieldBody))
	b.WriteString("\n\n---\nAsked by ")
	b.WriteString(q.AskerEmail)
	b.WriteString(" in the Q&A app")
	ext := ""
	if q.ExternalID != nil {
		ext = *q.ExternalID
	}
	if s.QuestionURLTemplate != "" {
		u := strings.NewReplacer("{external_id}", ext, "{id}", q.ID).Replace(s.QuestionURLTemplate)
		fmt.Fprintf(&b, ": [open the question](%s)", u)
	} else if ext != "" {
		fmt.Fprintf(&b, " (question %s)", ext)
	}
	b.WriteString(". Comments here become replies there.")
	return b.String()
}
