package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Reconciler repairs what Linear's webhooks missed: it lists the issues changed since a workspace's watermark, checks
// linsync's webhook in Linear, and records what each run repaired.
type Reconciler struct {
	DB       *postgres.DB
	Linear   *linear.Clients
	Temporal client.Client
	// Metrics counts retries, repaired drift and re-enabled webhooks; nil counts nothing.
	Metrics *Metrics
	// Now is the clock of first watermarks; nil means time.Now.
	Now func() time.Time
}

// ReconcileFirstLookback is how far back a workspace's first reconciliation looks: changes older than that were
// there before reconciliation existed and are left to the webhooks that carried them.
const ReconcileFirstLookback = time.Hour

// ReconcilePageSize is how many issues one IssuesUpdatedSince request asks for.
const ReconcilePageSize = 50

// ReconcileStart is where a run begins.
type ReconcileStart struct {
	// Connected is false when the workspace has no active Linear connection: there is nothing to reconcile.
	Connected bool `json:"connected"`
	// Paused: the connection waits for a reconnect (Linear refused its credential); the run does nothing, and the
	// schedule stays for when the admin connects again.
	Paused    bool      `json:"paused,omitempty"`
	Watermark time.Time `json:"watermark"`
}

// BeginReconcile reads the workspace's connection state and watermark (stored at now minus an hour on first use).
func (a *Reconciler) BeginReconcile(ctx context.Context, workspaceID string) (*ReconcileStart, error) {
	conn, err := a.DB.FindConnection(ctx, workspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return &ReconcileStart{}, nil
	}
	if err != nil {
		return nil, err
	}
	if conn.Status != linsync.ConnectionActive {
		return &ReconcileStart{Paused: linsync.ConnectionPaused(conn.Status)}, nil
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	wm, err := a.DB.ReconcileWatermark(ctx, workspaceID, now().Add(-ReconcileFirstLookback))
	if err != nil {
		return nil, err
	}
	return &ReconcileStart{Connected: true, Watermark: wm}, nil
}

// DeleteSchedule removes a reconciliation schedule whose workspace is no longer connected; one already gone is
// fine.
func (a *Reconciler) DeleteSchedule(ctx context.Context, scheduleID string) error {
	err := a.Temporal.ScheduleClient().GetHandle(ctx, scheduleID).Delete(ctx)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete schedule %s: %w", scheduleID, err)
	}
	return nil
}

// WebhookCheck is what CheckWebhooks found.
type WebhookCheck struct {
	Checked int `json:"checked"`
	// Reenabled are the Linear ids of linsync's webhooks that Linear had disabled and that are enabled again.
	Reenabled []string `json:"reenabled,omitempty"`
	// Missing are the Linear ids of linsync's webhooks Linear no longer has; re-registering is an admin's call
	// (POST …/integrations/linear/webhooks), since it issues a new secret.
	Missing []string `json:"missing,omitempty"`
}

// CheckWebhooks looks up linsync's managed webhooks in Linear and re-enables those Linear disabled (it does so
// after repeated delivery failures). Only enabled is sent, so URL and secret stay as they are. Re-enabling twice is
// harmless, so a retried attempt converges.
func (a *Reconciler) CheckWebhooks(ctx context.Context, workspaceID string) (*WebhookCheck, error) {
	records, err := a.DB.ListLinearWebhooks(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	ours := map[string]*linsync.WebhookRecord{}
	for _, r := range records {
		if r.Managed && r.LinearWebhookID != "" {
			ours[r.LinearWebhookID] = r
		}
	}
	out := &WebhookCheck{}
	if len(ours) == 0 {
		return out, nil
	}
	lc, _, err := LinearFor(ctx, a.Linear, workspaceID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	first := ReconcilePageSize
	var after *string
	for {
		resp, err := linear.Webhooks(ctx, lc.GQL(), &first, after)
		if err != nil {
			return nil, a.Metrics.LinearError(ctx, fmt.Errorf("list webhooks: %w", err))
		}
		for _, wh := range resp.Webhooks.Nodes {
			rec, ok := ours[wh.Id]
			if !ok {
				continue
			}
			seen[wh.Id] = true
			out.Checked++
			if wh.Enabled {
				continue
			}
			if _, err := linear.WebhookUpdate(ctx, lc.GQL(), wh.Id, linear.WebhookUpdateInput{Enabled: linear.Value(true)}); err != nil {
				return nil, a.Metrics.LinearError(ctx, fmt.Errorf("re-enable webhook %s: %w", wh.Id, err))
			}
			out.Reenabled = append(out.Reenabled, wh.Id)
			activity.GetLogger(ctx).Info("re-enabled linear webhook disabled by linear", "workspace_id", workspaceID,
				"webhook_id", rec.ID, "linear_webhook_id", wh.Id)
			a.Metrics.webhookReenabled()
			if err := a.DB.RecordAccessEvent(ctx, linsync.AccessEvent{WorkspaceID: workspaceID, ConnectionID: rec.ConnectionID,
				Kind: AccessWebhookReenabled, Outcome: linsync.AccessOutcomeOK,
				Detail: "reconciliation re-enabled webhook " + rec.ID + " that Linear had disabled"}); err != nil {
				return nil, err
			}
		}
		pi := resp.Webhooks.PageInfo
		if !pi.HasNextPage || pi.EndCursor == nil {
			break
		}
		after = pi.EndCursor
	}
	for id := range ours {
		if !seen[id] {
			out.Missing = append(out.Missing, id)
		}
	}
	return out, nil
}

// AccessWebhookReenabled is the access-history kind of a webhook reconciliation re-enabled.
const AccessWebhookReenabled = "webhook_reenabled"

// AccessDriftRepaired is the access-history kind of a reconciliation run that repaired something.
const AccessDriftRepaired = "drift_repaired"

// ReconcilePageInput asks for one page of issues changed after Since.
type ReconcilePageInput struct {
	WorkspaceID string    `json:"workspace_id"`
	Since       time.Time `json:"since"`
	After       string    `json:"after,omitempty"`
}

// ReconcileIssue is a changed Linear issue that linsync tracks.
type ReconcileIssue struct {
	IssueID    string    `json:"issue_id"`
	Identifier string    `json:"identifier"`
	URL        string    `json:"url"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Question: the issue is linked to a question; Body is then an Issue webhook built from the issue's current
	// values, for the question sync's webhook activity.
	Question bool            `json:"question,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	// Filed: linsync filed the issue for events.
	Filed bool `json:"filed,omitempty"`
}

// ReconcilePage is one page of changed issues, already narrowed to the ones linsync tracks.
type ReconcilePage struct {
	Issues []ReconcileIssue `json:"issues"`
	// Seen counts every issue on the page, tracked or not.
	Seen int `json:"seen"`
	// Newest is the latest updatedAt on the page (zero when empty).
	Newest time.Time `json:"newest"`
	Next   string    `json:"next,omitempty"`
}

// pageArgs are the page's GraphQL paging arguments: ReconcilePageSize items after the cursor, if any.
func (in ReconcilePageInput) pageArgs() (first *int, after *string) {
	n := ReconcilePageSize
	if in.After != "" {
		after = &in.After
	}
	return &n, after
}

// ChangedIssues fetches one page of the workspace's issues changed after Since (Linear's IssuesUpdatedSince,
// archived included) and keeps those linked to questions or filed by linsync.
func (a *Reconciler) ChangedIssues(ctx context.Context, in ReconcilePageInput) (*ReconcilePage, error) {
	lc, conn, err := LinearFor(ctx, a.Linear, in.WorkspaceID)
	if err != nil {
		return nil, err
	}
	first, after := in.pageArgs()
	resp, err := linear.IssuesUpdatedSince(ctx, lc.GQL(), in.Since.UTC().Format(time.RFC3339Nano), first, after)
	if err != nil {
		return nil, a.Metrics.LinearError(ctx, fmt.Errorf("list issues updated since %s: %w", in.Since.Format(time.RFC3339), err))
	}
	nodes := resp.Issues.Nodes
	page := &ReconcilePage{Seen: len(nodes)}
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.Id)
		if n.UpdatedAt.After(page.Newest) {
			page.Newest = n.UpdatedAt.UTC()
		}
	}
	questions, filed, err := a.DB.LinkedIssues(ctx, in.WorkspaceID, ids)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		f := n.IssueFields
		ri := ReconcileIssue{IssueID: f.Id, Identifier: f.Identifier, URL: f.Url, UpdatedAt: f.UpdatedAt.UTC(),
			Question: questions[f.Id], Filed: filed[f.Id]}
		if !ri.Question && !ri.Filed {
			continue
		}
		if ri.Question {
			if ri.Body, err = IssueWebhookBody(conn.OrganizationID, &f); err != nil {
				return nil, err
			}
		}
		page.Issues = append(page.Issues, ri)
	}
	if pi := resp.Issues.PageInfo; pi.HasNextPage && pi.EndCursor != nil {
		page.Next = *pi.EndCursor
	}
	return page, nil
}

// IssueWebhookBody builds the Issue webhook Linear would have sent for the issue as it is now: action update (remove
// when trashed), the issue's current values, its updatedAt as the time of the change, no actor and no updatedFrom
// (which fields changed, and by whom, is unknown). Fed to Questions.ApplyLinearIssue, per-field versions make it a
// no-op when the webhooks missed nothing.
func IssueWebhookBody(organizationID string, f *linear.IssueFields) (json.RawMessage, error) {
	action := "update"
	if f.Trashed != nil && *f.Trashed {
		action = "remove"
	}
	updated := f.UpdatedAt.UTC().Format(time.RFC3339Nano)
	d := linear.IssueData{ID: f.Id, Identifier: f.Identifier, Number: f.Number, Title: f.Title,
		Description: f.Description, Priority: f.Priority, StateID: f.State.Id, TeamID: f.Team.Id, URL: f.Url,
		Trashed: f.Trashed, LabelIDs: f.LabelIds, CreatedAt: f.CreatedAt.UTC().Format(time.RFC3339Nano), UpdatedAt: updated,
		State: &linear.StateRef{ID: f.State.Id, Name: f.State.Name, Type: f.State.Type},
		Team:  &linear.TeamRef{ID: f.Team.Id, Key: f.Team.Key}}
	if f.Assignee != nil {
		id := f.Assignee.Id
		d.AssigneeID = &id
		d.Assignee = &linear.UserRef{ID: id, Name: f.Assignee.Name, Email: f.Assignee.Email}
	}
	if f.ArchivedAt != nil {
		s := f.ArchivedAt.UTC().Format(time.RFC3339Nano)
		d.ArchivedAt = &s
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode issue %s: %w", f.Id, err)
	}
	body, err := json.Marshal(linear.Webhook{Action: action, Type: linear.TypeIssue, CreatedAt: updated,
		OrganizationID: organizationID, WebhookTimestamp: linear.Millis(f.UpdatedAt.UnixMilli()), URL: f.Url, Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode issue webhook %s: %w", f.Id, err)
	}
	return body, nil
}

// FiledRepair is a filed issue's identifier and URL as Linear shows them now.
type FiledRepair struct {
	WorkspaceID string `json:"workspace_id"`
	IssueID     string `json:"issue_id"`
	Identifier  string `json:"identifier"`
	URL         string `json:"url"`
}

// RepairFiledIssue records a filed issue's current identifier and URL (a move to another team changes both; no
// webhook handler follows filed issues) and reports whether linsync showed stale ones.
func (a *Reconciler) RepairFiledIssue(ctx context.Context, in FiledRepair) (bool, error) {
	return a.DB.RepairFiledIssueLink(ctx, in.WorkspaceID, in.IssueID, in.Identifier, in.URL)
}

// Repair is one thing a run repaired, for the audit log.
type Repair struct {
	Kind       string    `json:"kind"`
	IssueID    string    `json:"issue_id,omitempty"`
	QuestionID string    `json:"question_id,omitempty"`
	Changed    []string  `json:"changed,omitempty"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}

// Drift kinds, the kind label of linsync_drift_repaired_total.
const (
	DriftQuestion       = "question"
	DriftFiledIssue     = "filed_issue"
	DriftQuestionResync = "question_resync"
)

// ReconcileReport is a finished run: where it started, how far Linear's changes are now applied, what it repaired.
type ReconcileReport struct {
	WorkspaceID   string    `json:"workspace_id"`
	WorkflowID    string    `json:"workflow_id"`
	RunID         string    `json:"run_id"`
	StartedAt     time.Time `json:"started_at"`
	WatermarkFrom time.Time `json:"watermark_from"`
	WatermarkTo   time.Time `json:"watermark_to"`
	IssuesSeen    int       `json:"issues_seen"`
	Repairs       []Repair  `json:"repairs,omitempty"`
	// MoreRepairs counts repairs beyond those described in Repairs; RepairCounts counts every repair by kind.
	MoreRepairs  int            `json:"more_repairs,omitempty"`
	RepairCounts map[string]int `json:"repair_counts,omitempty"`
	Reenabled    []string       `json:"reenabled,omitempty"`
	Resynced     int            `json:"resynced"`
}

// FinishReconcile advances the watermark (everything up to it is applied), stores the run in the workspace's
// reconciliation log and counts what it repaired. A retried attempt advances nothing further and counts nothing
// twice.
func (a *Reconciler) FinishReconcile(ctx context.Context, r ReconcileReport) error {
	if err := a.DB.AdvanceReconcileWatermark(ctx, r.WorkspaceID, r.WatermarkTo); err != nil {
		return err
	}
	counts := r.RepairCounts
	if counts == nil {
		counts = map[string]int{}
		for _, rep := range r.Repairs {
			counts[rep.Kind]++
		}
	}
	repaired, err := json.Marshal(r.Repairs)
	if err != nil {
		return fmt.Errorf("encode repairs: %w", err)
	}
	inserted, err := a.DB.RecordReconcileRun(ctx, linsync.ReconcileRun{RunID: r.RunID, WorkspaceID: r.WorkspaceID,
		WorkflowID: r.WorkflowID, WatermarkFrom: r.WatermarkFrom, WatermarkTo: r.WatermarkTo, IssuesSeen: r.IssuesSeen,
		QuestionsRepaired: counts[DriftQuestion], FiledRepaired: counts[DriftFiledIssue], QuestionsResynced: r.Resynced,
		WebhooksReenabled: len(r.Reenabled), Repaired: repaired, StartedAt: r.StartedAt})
	if err != nil || !inserted {
		return err
	}
	if r.Resynced > 0 {
		counts[DriftQuestionResync] = r.Resynced
	}
	var parts []string
	for _, kind := range []string{DriftQuestion, DriftComment, DriftFiledIssue, DriftQuestionResync} {
		if n := counts[kind]; n > 0 {
			a.Metrics.driftRepaired(kind, n)
			parts = append(parts, fmt.Sprintf("%d %s", n, kind))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	activity.GetLogger(ctx).Info("reconciliation repaired drift", "workspace_id", r.WorkspaceID, "repaired", strings.Join(parts, ", "))
	return a.DB.RecordAccessEvent(ctx, linsync.AccessEvent{WorkspaceID: r.WorkspaceID, Kind: AccessDriftRepaired,
		Outcome: linsync.AccessOutcomeOK, Detail: "reconciliation run " + r.RunID + " repaired " + strings.Join(parts, ", ")})
}

// ReconcileResyncLimit bounds how many unsynced questions one run signals; the rest wait for the next run.
const ReconcileResyncLimit = 100

// QuestionsToResync returns the ids of the workspace's questions whose push to Linear is pending or failed and that
// nothing is working on (linsync.NextActionResync), longest-waiting first.
func (a *Reconciler) QuestionsToResync(ctx context.Context, workspaceID string) ([]string, error) {
	qs, err := a.DB.UnsyncedQuestions(ctx, workspaceID, ReconcileResyncLimit)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, q := range qs {
		if q.NextAction == linsync.NextActionResync {
			ids = append(ids, q.QuestionID)
		}
	}
	return ids, nil
}
