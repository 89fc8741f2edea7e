package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Events files monitoring events as Linear issues.
type Events struct {
	DB     *postgres.DB
	Linear *linear.Clients
	// Temporal signals the aggregator workflows (signal-with-start) on the activity's own task queue.
	Temporal client.Client
	// Metrics counts the retries of Linear calls; nil counts nothing.
	Metrics *Metrics
	// Aggregator is the aggregator workflow's type name (workflows.TypeIssueAggregator, which activities cannot
	// import), set by worker.NewActivities.
	Aggregator string
}

// AggregatorSignalName is the signal the aggregator workflow receives its entries on.
const AggregatorSignalName = "entries"

// ErrTypeNoAggregator is SignalAggregator's error when the worker was built without Events.Aggregator.
const ErrTypeNoAggregator = "NoAggregatorWorkflow"

// EventClaim identifies an event's run for LoadEventRouting.
type EventClaim struct {
	WorkspaceID string `json:"workspace_id"`
	Key         string `json:"key"`
	EventType   string `json:"event_type"`
	WorkflowID  string `json:"workflow_id"`
	RunID       string `json:"run_id"`
}

// LoadEventRouting claims the event for this run and loads the workspace's routing context. An event already
// handled to completion comes back with Duplicate set and nothing else.
func (e *Events) LoadEventRouting(ctx context.Context, in EventClaim) (*linsync.RoutingContext, error) {
	ok, err := e.DB.ClaimEventReceipt(ctx, in.WorkspaceID, in.Key, in.EventType, in.WorkflowID, in.RunID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &linsync.RoutingContext{WorkspaceID: in.WorkspaceID, Duplicate: true}, nil
	}
	rc, err := e.DB.EventRouting(ctx, in.WorkspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return nil, temporal.NewNonRetryableApplicationError("workspace has no Linear connection", ErrTypeNotConnected, err)
	}
	return rc, err
}

// CompleteEvent marks an event handled, so its key stays a duplicate after Temporal forgets the workflow.
func (e *Events) CompleteEvent(ctx context.Context, workspaceID, key string) error {
	return e.DB.CompleteEventReceipt(ctx, workspaceID, key)
}

// FileInput is a batch of entries for one issue.
type FileInput struct {
	WorkspaceID string           `json:"workspace_id"`
	Kind        string           `json:"kind"`
	Decision    linsync.Decision `json:"decision"`
	WindowStart time.Time        `json:"window_start"`
	WindowEnd   *time.Time       `json:"window_end,omitempty"`
	// Hour is the hour whose creation cap a new issue counts against, from the workflow's clock so a retry that
	// crosses the hour still asks for the same slot.
	Hour    time.Time            `json:"hour"`
	Entries []linsync.FiledEntry `json:"entries"`
	// TakeStaged files the entries staged in Postgres for the decision's dedup key too (an aggregator's).
	TakeStaged bool `json:"take_staged,omitempty"`
	// CompleteKey, when set, is the event key to mark handled once the entries are filed.
	CompleteKey string `json:"complete_key,omitempty"`
}

// FileResult says what FileEntries did.
type FileResult struct {
	IssueID    string `json:"issue_id"`
	Identifier string `json:"identifier,omitempty"`
	URL        string `json:"url,omitempty"`
	// Status is created, or capped when the hourly cap sent the entries to the digest DigestID.
	Status   string `json:"status"`
	DigestID string `json:"digest_id,omitempty"`
	Added    int    `json:"added"`
	Created  bool   `json:"created"`
	Updated  bool   `json:"updated"`
}

// issueNamespace seeds FiledIssueID; changing it would fork issue identities.
var issueNamespace = uuid.MustParse("c4e1a0b2-5f3d-4e8a-9b7c-2d6f0e1a3b59")

// FiledIssueID is the Linear issue id linsync chooses for an issue: derived from workspace, dedup key and window,
// so every worker and every retry choose the same one and a second issueCreate is a conflict, not a duplicate.
func FiledIssueID(workspaceID, dedupKey string, windowStart time.Time) string {
	return uuid.NewSHA1(issueNamespace, []byte(workspaceID+"\x00"+dedupKey+"\x00"+windowStart.UTC().Format(time.RFC3339Nano))).String()
}

// DigestDedupKey is the dedup key of a team's hourly digest.
func DigestDedupKey(teamID string) string { return "digest:" + teamID }

// ErrTypeFilingBusy is FileEntries' retryable error while another writer holds the issue's lease.
const ErrTypeFilingBusy = "FilingBusy"

// maxFilingRounds bounds how often one attempt files an issue again because entries arrived while it wrote; past
// it the attempt fails and its retry carries on, so a stream of entries cannot keep one attempt forever.
const maxFilingRounds = 5

// FileEntries records entries for an issue and brings Linear in step: the first call creates the issue (when the
// team's hourly cap allows; otherwise it reports capped and the caller sends the entries to the digest), later
// calls update its title, description and labels in place when the rendered text changed. It is idempotent:
// entries are deduplicated by key, the issue id is chosen before the create, and an unchanged rendering sends
// nothing.
//
// No transaction is open while Linear is called: each round reads what to send in one short transaction
// (PrepareFiling), calls Linear, and records the result in one statement only if its version is still the newest
// (FinishFiling). Writers of one issue are serialised by a lease, not a lock: a host's broken links and a team's
// hourly digest have one writer by design (their single-threaded aggregator workflow), but click thresholds,
// takeovers and scans are filed by one FileEvent workflow per event, so two events of one link, band and hour can
// file the same issue at once. The writer that holds the lease files every entry recorded before it finishes;
// another writer leaves its entries, already in Postgres, to it.
func (e *Events) FileEntries(ctx context.Context, in FileInput) (*FileResult, error) {
	settings, err := e.DB.EventSettings(ctx, in.WorkspaceID)
	if err != nil {
		return nil, err
	}
	// The entries are kept before anything can fail on Linear's side (even a connection that is gone), so work
	// that fails for good is still in Postgres for the window's next run or the dead letter's replay.
	id, added, err := e.record(ctx, in)
	if err != nil {
		return nil, err
	}
	if id == "" {
		// An aggregator's filing found nothing staged and no issue to bring up to date.
		return &FileResult{}, e.complete(ctx, in)
	}
	lc, _, err := LinearFor(ctx, e.Linear, in.WorkspaceID)
	if err != nil {
		return nil, err
	}
	info := activity.GetInfo(ctx)
	hour := in.Hour.UTC().Truncate(time.Hour)
	activityWriter := info.WorkflowExecution.RunID + "/" + info.ActivityID + "/"
	req := linsync.FilingRequest{ID: id, Writer: fmt.Sprintf("%s%d", activityWriter, info.Attempt),
		Predecessor: activityWriter, LeaseUntil: info.Deadline, Hour: hour, CapPerHour: settings.CreationCapPerHour,
		// Digests and takeovers are never capped: the digest is where capped events go, and a domain takeover is a
		// security incident that must not wait in a list.
		Uncapped: in.Kind == linsync.EventKindDigest || in.Kind == linsync.EventDomainTakeover,
		DigestID: func(teamID string) string { return FiledIssueID(in.WorkspaceID, DigestDedupKey(teamID), hour) }}
	if req.LeaseUntil.IsZero() {
		req.LeaseUntil = time.Now().Add(time.Minute)
	}
	// A round that fails gives its lease up at once; after its deadline too (hence no cancellation), since a lease
	// left behind would only keep the next writer out until it expires.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := e.DB.ReleaseFiling(rctx, id, req.Writer); err != nil {
			activity.GetLogger(ctx).Warn("release filed issue", "issue_id", id, "err", err)
		}
	}()

	res := &FileResult{IssueID: id, Added: added, Status: linsync.FiledCreated}
	for round := 1; ; round++ {
		p, err := e.DB.PrepareFiling(ctx, req)
		if err != nil {
			return nil, err
		}
		res.Identifier, res.URL = p.Issue.Identifier, p.Issue.URL
		if p.Issue.Status == linsync.FiledCapped {
			res.Status, res.DigestID = linsync.FiledCapped, *p.Issue.DigestIssueID
			activity.GetLogger(ctx).Info("creation cap reached; entries go to the digest", "workspace_id", in.WorkspaceID,
				"team_id", p.Issue.TeamID, "dedup_key", in.Decision.DedupKey, "digest_id", res.DigestID)
			// The event is complete only once the digest holds it; the caller forwards it and completes it then.
			return res, nil
		}
		if p.Busy {
			// The lease holder files our entries if it lives (they were recorded before this round, so its
			// FinishFiling sees them as Behind and it files again). It may not: a holder that died with its lease
			// would file nothing, and completing the event now would lose it. So look again once the lease is over;
			// by then the entries are filed (and this attempt sends nothing), or this attempt files them.
			wait := time.Until(p.BusyUntil) + 100*time.Millisecond
			activity.GetLogger(ctx).Info("issue is being filed by another writer; looking again when its lease ends",
				"issue_id", id, "dedup_key", in.Decision.DedupKey, "wait", wait)
			return nil, temporal.NewApplicationErrorWithOptions("issue is being filed by another writer", ErrTypeFilingBusy,
				temporal.ApplicationErrorOptions{NextRetryDelay: max(wait, 100*time.Millisecond)})
		}
		fin, err := e.send(ctx, lc, in, settings, p, req.Writer, res)
		if err != nil {
			return nil, err
		}
		out, err := e.DB.FinishFiling(ctx, fin)
		if err != nil {
			return nil, err
		}
		if !out.Behind {
			break
		}
		if round >= maxFilingRounds {
			return nil, temporal.NewApplicationErrorWithOptions("entries keep arriving while the issue is filed; filing again",
				"FilingBehind", temporal.ApplicationErrorOptions{NextRetryDelay: time.Second})
		}
	}
	return res, e.complete(ctx, in)
}

// send brings Linear up to the plan: it creates the issue when Linear does not have it, updates it when its
// rendering or labels changed, and sends nothing otherwise. It runs with no transaction open; what it returns is
// recorded by FinishFiling.
func (e *Events) send(ctx context.Context, lc *linear.Client, in FileInput, settings linsync.EventSettings,
	p *linsync.FilingPlan, writer string, res *FileResult) (linsync.FilingResult, error) {
	f, key := p.Issue, in.Decision.DedupKey
	title, body := RenderIssue(IssueView{ID: f.ID, Kind: in.Kind, Prefix: settings.TitlePrefix, WindowStart: f.WindowStart,
		WindowEnd: f.WindowEnd, Entries: p.Entries, Previous: p.Previous, CapPerHour: settings.CreationCapPerHour})
	fin := linsync.FilingResult{ID: f.ID, Writer: writer, Version: f.ContentVersion, Title: title,
		Hash: renderHash(title, body, f.Priority), Labels: f.Labels}
	labelsChanged := !sameLabels(f.Labels, f.AppliedLabels)

	switch {
	case f.Status == linsync.FiledPending:
		labelIDs, err := lc.LabelIDs(ctx, f.TeamID, f.Labels)
		if err != nil {
			return fin, e.Metrics.LinearError(ctx, err)
		}
		issue, err := CreateOrFetch(ctx, func(ctx context.Context) (*linear.IssueFields, error) {
			r, err := linear.IssueCreate(ctx, lc.GQL(), linear.IssueCreateInput{ID: f.ID, TeamID: f.TeamID, Title: title,
				Description: body, Priority: f.Priority, LabelIDs: labelIDs})
			if err != nil {
				return nil, err
			}
			return &r.IssueCreate.Issue.IssueFields, nil
		}, func(ctx context.Context) (*linear.IssueFields, error) {
			r, err := linear.Issue(ctx, lc.GQL(), f.ID)
			if err != nil {
				return nil, err
			}
			return &r.Issue.IssueFields, nil
		})
		if err != nil {
			return fin, e.Metrics.LinearError(ctx, fmt.Errorf("create issue %s: %w", key, err))
		}
		if issue.Title != title || issue.Description == nil || *issue.Description != body {
			// An earlier attempt created the issue from fewer entries; bring it up to date now.
			r, err := linear.IssueUpdate(ctx, lc.GQL(), f.ID, linear.IssueUpdateInput{Title: linear.Value(title),
				Description: linear.Value(body), LabelIDs: linear.Value(labelIDs)})
			if err != nil {
				return fin, e.Metrics.LinearError(ctx, fmt.Errorf("update issue %s: %w", key, err))
			}
			if r.IssueUpdate.Issue != nil {
				issue.Url = r.IssueUpdate.Issue.Url
			}
			res.Updated = true
		}
		fin.Identifier, fin.URL = issue.Identifier, issue.Url
		res.Created, res.Identifier, res.URL = true, issue.Identifier, issue.Url
	case fin.Hash != f.AppliedHash || labelsChanged:
		upd := linear.IssueUpdateInput{Title: linear.Value(title), Description: linear.Value(body),
			Priority: linear.Value(f.Priority)}
		if labelsChanged {
			labelIDs, err := lc.LabelIDs(ctx, f.TeamID, f.Labels)
			if err != nil {
				return fin, e.Metrics.LinearError(ctx, err)
			}
			upd.LabelIDs = linear.Value(labelIDs)
		}
		r, err := linear.IssueUpdate(ctx, lc.GQL(), f.ID, upd)
		if err != nil {
			return fin, e.Metrics.LinearError(ctx, fmt.Errorf("update issue %s: %w", key, err))
		}
		if r.IssueUpdate.Issue != nil {
			// Linear's URL ends in a slug of the title, so a new title is a new URL; keep the one Linear shows.
			fin.Identifier, fin.URL = r.IssueUpdate.Issue.Identifier, r.IssueUpdate.Issue.Url
		}
		res.Updated = true
	}
	return fin, nil
}

// record makes sure the issue's row exists and adds in's entries to it; it returns the issue id and how many
// entries were new.
func (e *Events) record(ctx context.Context, in FileInput) (string, int, error) {
	d := in.Decision
	f, added, err := e.DB.RecordFiling(ctx, linsync.FiledIssueInput{
		ID: FiledIssueID(in.WorkspaceID, d.DedupKey, in.WindowStart), WorkspaceID: in.WorkspaceID, Kind: in.Kind,
		DedupKey: d.DedupKey, WindowStart: in.WindowStart, WindowEnd: in.WindowEnd, TeamID: d.TeamID,
		RuleIndex: d.RuleIndex, Labels: d.Labels, Priority: d.Priority, Entries: in.Entries, TakeStaged: in.TakeStaged,
	})
	if err != nil || f == nil {
		return "", 0, err
	}
	// The row's id, not one derived again: a window read back from Postgres has lost the nanoseconds its id was
	// derived from.
	return f.ID, added, nil
}

// RecordEntries keeps entries for their issue without talking to Linear: what an aggregator held when its filing
// failed for good, so the window's next run (the host's next link, or the dead letter's replay) files them.
func (e *Events) RecordEntries(ctx context.Context, in FileInput) error {
	_, _, err := e.record(ctx, in)
	return err
}

// WindowQuery asks for an aggregator's window in Postgres: the one starting at Start, or (Start zero) the newest
// one that had opened by At.
type WindowQuery struct {
	WorkspaceID string    `json:"workspace_id"`
	DedupKey    string    `json:"dedup_key"`
	Start       time.Time `json:"start,omitzero"`
	At          time.Time `json:"at"`
}

// StoredWindow is an aggregator window as Postgres keeps it.
type StoredWindow struct {
	Found   bool      `json:"found"`
	Start   time.Time `json:"start,omitzero"`
	End     time.Time `json:"end,omitzero"`
	Status  string    `json:"status,omitempty"`
	Entries int       `json:"entries"`
}

// FindWindow looks up the window of an aggregator's issue, so a new run for the same dedup key continues the
// window the first entry opened instead of opening one of its own.
func (e *Events) FindWindow(ctx context.Context, q WindowQuery) (*StoredWindow, error) {
	f, err := e.DB.FiledWindow(ctx, q.WorkspaceID, q.DedupKey, q.Start, q.At)
	if err != nil || f == nil {
		return &StoredWindow{}, err
	}
	w := &StoredWindow{Found: true, Start: f.WindowStart, Status: f.Status, Entries: f.EntryCount}
	if f.WindowEnd != nil {
		w.End = *f.WindowEnd
	}
	return w, nil
}

func (e *Events) complete(ctx context.Context, in FileInput) error {
	if in.CompleteKey == "" {
		return nil
	}
	return e.DB.CompleteEventReceipt(ctx, in.WorkspaceID, in.CompleteKey)
}

// renderHash identifies what Linear was last sent, so an unchanged rendering is not sent again.
func renderHash(title, body string, priority int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d", title, body, priority)
	return hex.EncodeToString(h.Sum(nil))
}

func sameLabels(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = strings.ToLower(s)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}

// AggregatorSignal is what an aggregator receives: how many entries were handed to it in Postgres (staged for its
// dedup key; some may have been staged by an earlier attempt), and the decision routing made for them. (Entries is
// how signals carried entries before they were staged.)
type AggregatorSignal struct {
	Entries  []linsync.FiledEntry `json:"entries,omitempty"`
	Staged   int                  `json:"staged,omitempty"`
	Decision linsync.Decision     `json:"decision"`
}

// SignalInput names an aggregator, how to start it when it is not running, and what to send it.
type SignalInput struct {
	WorkflowID string                  `json:"workflow_id"`
	Start      linsync.AggregatorInput `json:"start"`
	Signal     AggregatorSignal        `json:"signal"`
	// CompleteKey, when set, is the event key to mark handled once the aggregator holds the signal.
	CompleteKey string `json:"complete_key,omitempty"`
	WorkspaceID string `json:"workspace_id,omitempty"`
	// ForwardFrom names a capped issue whose entries not yet forwarded go to this (digest) aggregator.
	ForwardFrom string `json:"forward_from,omitempty"`
}

// SignalAggregator stages the signal's entries (and a capped issue's, with ForwardFrom) in Postgres for the
// aggregator, then, when the aggregator must be woken (postgres.DB.StageEntries), signals it how many there were,
// starting it when it is not running (signal-with-start), on this activity's task queue. Only counts travel
// through Temporal, so an aggregator's payloads stay small however many entries it files. A retry stages nothing
// twice (entries are keyed) and signals again, which costs at most one filing that finds nothing new.
func (e *Events) SignalAggregator(ctx context.Context, in SignalInput) error {
	if e.Aggregator == "" {
		return temporal.NewNonRetryableApplicationError("no aggregator workflow is configured", ErrTypeNoAggregator, nil)
	}
	ws := in.Start.WorkspaceID
	d := in.Signal.Decision
	added, wake, err := e.DB.StageEntries(ctx, ws, in.Start.DedupKey, in.Signal.Entries, d.Labels, d.Priority)
	if err != nil {
		return err
	}
	if in.ForwardFrom != "" {
		n, w, err := e.DB.ForwardToDigest(ctx, in.ForwardFrom, in.Start.DedupKey)
		if err != nil {
			return err
		}
		added, wake = added+n, wake || w
	}
	// An aggregator already woken for entries still waiting takes these with them: one signal per filing, not one
	// per entry, which keeps a host of thousands of links far below Temporal's 10,000 signals per run. A retry
	// signals in any case: its first attempt may have staged the entries and failed before its signal.
	if !wake && activity.GetInfo(ctx).Attempt == 1 {
		return e.complete(ctx, FileInput{WorkspaceID: in.WorkspaceID, CompleteKey: in.CompleteKey})
	}
	in.Signal.Entries, in.Signal.Staged = nil, in.Signal.Staged+max(added, 1)
	_, err = e.Temporal.SignalWithStartWorkflow(ctx, in.WorkflowID, AggregatorSignalName, in.Signal,
		client.StartWorkflowOptions{ID: in.WorkflowID, TaskQueue: activity.GetInfo(ctx).TaskQueue},
		e.Aggregator, in.Start)
	if err != nil {
		return fmt.Errorf("signal aggregator %s: %w", in.WorkflowID, err)
	}
	if in.CompleteKey == "" {
		return nil
	}
	return e.DB.CompleteEventReceipt(ctx, in.WorkspaceID, in.CompleteKey)
}
