package workflows

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// Outcomes of FileEvent.
const (
	EventDuplicate  = "duplicate"
	EventSkipped    = "skipped"
	EventAggregated = "aggregated"
	EventFiled      = "filed"
	EventDigested   = "digest"
)

// EventWorkflowID is the workflow ID of a submitted event: a resubmission with the same idempotency key finds
// the ID taken, which is the dedup.
func EventWorkflowID(workspaceID, key string) string { return "event:" + workspaceID + ":" + key }

// HostAggregatorID is the workflow that collects one destination host's broken links for its window.
func HostAggregatorID(workspaceID, host string) string { return "host-agg:" + workspaceID + ":" + host }

// DigestAggregatorID is the workflow that collects a team's capped events for one hour.
func DigestAggregatorID(workspaceID, teamID string, hour time.Time) string {
	return "digest-agg:" + workspaceID + ":" + teamID + ":" + hour.UTC().Format("2006-01-02T15")
}

// EventInput is one validated event to file.
type EventInput struct {
	WorkspaceID string        `json:"workspace_id"`
	Key         string        `json:"key"`
	Event       linsync.Event `json:"event"`
	ReceivedAt  time.Time     `json:"received_at"`
	// LinearMaxAttempts bounds the attempts of each call to Linear, here and in the aggregators the event reaches
	// (0: DefaultLinearMaxAttempts).
	LinearMaxAttempts int32 `json:"linear_max_attempts,omitempty"`
}

// EventOutcome says what became of an event.
type EventOutcome struct {
	Status       string           `json:"status"`
	Decision     linsync.Decision `json:"decision"`
	IssueID      string           `json:"issue_id,omitempty"`
	Identifier   string           `json:"identifier,omitempty"`
	AggregatorID string           `json:"aggregator_workflow_id,omitempty"`
}

// RouteEvent decides where an event goes: the first rule (top-down) that matches, else the connection's defaults;
// labels are the connection's defaults, then labels derived from tags, then the rule's. It is pure, and it is the
// one function both filing and the simulate endpoint use.
func RouteEvent(rc linsync.RoutingContext, ev linsync.Event) linsync.Decision {
	d := linsync.Decision{File: true, RuleIndex: -1, TeamID: rc.DefaultTeamID, Priority: rc.DefaultPriority}
	var rule *linsync.RoutingRule
	for i := range rc.Rules {
		if RuleMatches(rc.Rules[i], ev) {
			rule, d.RuleIndex, d.RuleName = &rc.Rules[i], i, rc.Rules[i].Name
			break
		}
	}
	d.Labels = linsync.MergeLabels(rc.DefaultLabels, tagLabels(ev.Tags, rc.Settings.TagLabels))
	if rule != nil {
		d.Labels = linsync.MergeLabels(d.Labels, rule.Labels)
		if rule.TeamID != "" {
			d.TeamID = rule.TeamID
		}
		if rule.Priority != nil {
			d.Priority = *rule.Priority
		}
	}

	switch ev.Type {
	case linsync.EventLinkBroken:
		host := ev.DestinationHost
		d.DedupKey = ev.Type + ":host:" + host
		d.AggregatorID = HostAggregatorID(rc.WorkspaceID, host)
	case linsync.EventClickThreshold:
		hour := timeOr(ev.TriggeredAt).Truncate(time.Hour)
		d.DedupKey = ev.Type + ":" + ev.LinkID + ":" + ev.Band + ":" + hour.Format("2006-01-02T15")
		d.WindowStart, d.WindowEnd = hour, ptr(hour.Add(time.Hour))
	case linsync.EventDomainTakeover:
		day := timeOr(ev.DetectedAt).Truncate(24 * time.Hour)
		d.DedupKey = ev.Type + ":" + strings.ToLower(ev.Domain) + ":" + day.Format("2006-01-02")
		d.WindowStart, d.WindowEnd = day, ptr(day.Add(24*time.Hour))
		d.Priority = 1 // urgent, whatever the rule says: a takeover serves someone else's content on your links
	case linsync.EventLinkCreated:
		d.DedupKey = ev.Type + ":" + ev.LinkID
		if rule == nil || (!rule.FileLinkCreated && !slices.Contains(rule.EventTypes, ev.Type)) {
			d.File, d.Reason = false, "link.created is filed only when the matched rule asks for it (file_link_created or event_types)"
		}
	case linsync.EventScanComplete:
		d.DedupKey = ev.Type + ":" + ev.ScanID
	}
	return d
}

// RuleMatches reports whether every criterion a rule sets matches the event; a default rule matches anything.
func RuleMatches(r linsync.RoutingRule, ev linsync.Event) bool {
	if r.Default {
		return true
	}
	if len(r.EventTypes) > 0 && !slices.Contains(r.EventTypes, ev.Type) {
		return false
	}
	if r.FailureType != "" && r.FailureType != ev.FailureType {
		return false
	}
	if r.TagGlob != "" && !slices.ContainsFunc(ev.Tags, func(tag string) bool {
		ok, err := path.Match(r.TagGlob, tag)
		return ok && err == nil
	}) {
		return false
	}
	return r.TagGlob != "" || r.FailureType != "" || len(r.EventTypes) > 0
}

// tagLabels returns the configured tag labels the event's tags name, in the configured spelling.
func tagLabels(tags, configured []string) []string {
	var out []string
	for _, l := range configured {
		if slices.ContainsFunc(tags, func(t string) bool { return strings.EqualFold(t, l) }) {
			out = append(out, l)
		}
	}
	return out
}

func timeOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func ptr[T any](v T) *T { return &v }

// EventEntry is the entry an event adds to its issue: broken links are keyed by link id, so the same link
// reported again (under any idempotency key) changes nothing; other events by their key.
func EventEntry(key string, ev linsync.Event) linsync.FiledEntry {
	e := linsync.FiledEntry{Key: "event:" + key, EventKey: key, ShortURL: ev.ShortURL, Event: ev}
	if ev.Type == linsync.EventLinkBroken {
		e.Key = "link:" + ev.LinkID
	}
	return e
}

// FileEvent files one submitted event: it claims the event, routes it, and either files its issue, hands it to
// its host's aggregator (broken links), or sends it to the hour's digest when the team's cap is reached.
func FileEvent(ctx workflow.Context, in EventInput) (*EventOutcome, error) {
	info := workflow.GetInfo(ctx)
	var ev *activities.Events
	var rc linsync.RoutingContext
	claim := activities.EventClaim{WorkspaceID: in.WorkspaceID, Key: in.Key, EventType: in.Event.Type,
		WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID}
	if err := workflow.ExecuteActivity(storeContext(ctx), ev.LoadEventRouting, claim).Get(ctx, &rc); err != nil {
		return nil, fmt.Errorf("load routing for event %s: %w", in.Key, err)
	}
	if rc.Duplicate {
		return &EventOutcome{Status: EventDuplicate}, nil
	}
	d := RouteEvent(rc, in.Event)
	out := &EventOutcome{Decision: d}
	if !d.File {
		if err := workflow.ExecuteActivity(storeContext(ctx), ev.CompleteEvent, in.WorkspaceID, in.Key).Get(ctx, nil); err != nil {
			return nil, fmt.Errorf("complete event %s: %w", in.Key, err)
		}
		out.Status = EventSkipped
		return out, nil
	}
	entry := EventEntry(in.Key, in.Event)

	if in.Event.Type == linsync.EventLinkBroken {
		sig := activities.SignalInput{
			WorkflowID: d.AggregatorID,
			Start: linsync.AggregatorInput{WorkspaceID: in.WorkspaceID, Kind: in.Event.Type, DedupKey: d.DedupKey,
				Window: rc.Settings.BrokenLinkWindow, Debounce: rc.Settings.Debounce, Decision: d,
				LinearMaxAttempts: in.LinearMaxAttempts},
			Signal:      activities.AggregatorSignal{Entries: []linsync.FiledEntry{entry}, Decision: d},
			CompleteKey: in.Key, WorkspaceID: in.WorkspaceID,
		}
		if err := workflow.ExecuteActivity(storeContext(ctx), ev.SignalAggregator, sig).Get(ctx, nil); err != nil {
			return nil, fmt.Errorf("hand event %s to %s: %w", in.Key, d.AggregatorID, err)
		}
		out.Status, out.AggregatorID = EventAggregated, d.AggregatorID
		return out, nil
	}

	hour := workflow.Now(ctx).UTC().Truncate(time.Hour)
	var res activities.FileResult
	fin := activities.FileInput{WorkspaceID: in.WorkspaceID, Kind: in.Event.Type, Decision: d, WindowStart: d.WindowStart,
		WindowEnd: d.WindowEnd, Hour: hour, Entries: []linsync.FiledEntry{entry}, CompleteKey: in.Key}
	if err := callLinear(ctx, linearContext(ctx, time.Minute, in.LinearMaxAttempts), in.WorkspaceID, &res, ev.FileEntries, fin); err != nil {
		return nil, fmt.Errorf("file event %s: %w", in.Key, err)
	}
	out.IssueID, out.Identifier = res.IssueID, res.Identifier
	if res.Status == linsync.FiledCapped {
		if err := forwardToDigest(ctx, in.WorkspaceID, d, rc.Settings.Debounce, hour, fin.Entries, "", in.Key, in.LinearMaxAttempts); err != nil {
			return nil, err
		}
		out.Status, out.AggregatorID = EventDigested, DigestAggregatorID(in.WorkspaceID, d.TeamID, hour)
		return out, nil
	}
	out.Status = EventFiled
	return out, nil
}

// forwardToDigest sends capped entries to the team's digest of the hour, keyed by the issue they would have gone
// to, so a retried forward adds nothing twice: entries, and those of the capped issue forwardFrom that have not
// gone to the digest yet (an aggregator's, which stay in Postgres).
func forwardToDigest(ctx workflow.Context, workspaceID string, d linsync.Decision, debounce time.Duration,
	hour time.Time, entries []linsync.FiledEntry, forwardFrom, completeKey string, linearAttempts int32) error {
	end := hour.Add(time.Hour)
	dd := linsync.Decision{File: true, RuleIndex: d.RuleIndex, RuleName: d.RuleName, TeamID: d.TeamID,
		Labels: d.Labels, Priority: d.Priority, DedupKey: activities.DigestDedupKey(d.TeamID), WindowStart: hour, WindowEnd: &end}
	fwd := make([]linsync.FiledEntry, len(entries))
	for i, e := range entries {
		e.SourceKey = d.DedupKey
		e.Key = d.DedupKey + "|" + e.Key
		fwd[i] = e
	}
	id := DigestAggregatorID(workspaceID, d.TeamID, hour)
	sig := activities.SignalInput{
		WorkflowID: id,
		Start: linsync.AggregatorInput{WorkspaceID: workspaceID, Kind: linsync.EventKindDigest, DedupKey: dd.DedupKey,
			Window: time.Hour, Debounce: debounce, WindowStart: hour, WindowEnd: end, Decision: dd,
			LinearMaxAttempts: linearAttempts},
		Signal:      activities.AggregatorSignal{Entries: fwd, Decision: dd},
		CompleteKey: completeKey, WorkspaceID: workspaceID, ForwardFrom: forwardFrom,
	}
	var ev *activities.Events
	if err := workflow.ExecuteActivity(storeContext(ctx), ev.SignalAggregator, sig).Get(ctx, nil); err != nil {
		return fmt.Errorf("send %d entries to digest %s: %w", len(entries), id, err)
	}
	return nil
}

// maxSignalsPerRun keeps an aggregator run well below Temporal's 10,000 signals per execution, whatever the
// history-size suggestion says.
const maxSignalsPerRun = 2000

// IssueAggregator collects the entries of one issue over its window (a host's broken links for 24 h, a team's
// capped events for an hour) and files them debounced: the first flush creates the issue, later ones update it in
// place, so a burst of 800 links costs one create and a few updates. The entries wait in Postgres (staged by
// SignalAggregator); the workflow holds only their count, so its state, signals and activity inputs stay a few
// hundred bytes for a host of 20,000 links. Its whole state is its input, carried across continue-as-new with every
// signal drained first. When a host's window closes, links that arrived with the close
// open the next window (a new issue that refers to this one). One run at a time per workflow ID makes it the only
// writer of its issues (a host's windows, a team's hourly digest), so its filings never race each other in Linear.
func IssueAggregator(ctx workflow.Context, in linsync.AggregatorInput) error {
	ch := workflow.GetSignalChannel(ctx, activities.AggregatorSignalName)
	received := 0
	add := func(s activities.AggregatorSignal) {
		received++
		in.Decision.Labels = linsync.MergeLabels(in.Decision.Labels, s.Decision.Labels)
		in.Decision.Priority = linsync.MoreUrgent(in.Decision.Priority, s.Decision.Priority)
		in.Staged += s.Staged
		for _, e := range s.Entries {
			if !slices.ContainsFunc(in.Pending, func(p linsync.FiledEntry) bool { return p.Key == e.Key }) {
				in.Pending = append(in.Pending, e)
			}
		}
	}
	drain := func() {
		for {
			var s activities.AggregatorSignal
			if !ch.ReceiveAsync(&s) {
				return
			}
			add(s)
		}
	}

	// Signal-with-start delivers the entry that started this run as a signal: take it before deciding the window.
	drain()
	// fail keeps what this run holds in Postgres before the run fails for good, so nothing it was handed is lost:
	// the window's next run (the host's next link, or the dead letter's replay) files it.
	fail := func(err error) error {
		drain()
		if len(in.Pending) > 0 && !in.Capped && !in.WindowStart.IsZero() {
			if rerr := recordPending(ctx, in); rerr != nil {
				workflow.GetLogger(ctx).Error("keep entries of a failed aggregator", "dedup_key", in.DedupKey, "err", rerr)
			}
		}
		return err
	}
	if err := resumeWindow(ctx, &in); err != nil {
		return fail(err)
	}

	windowTimer := workflow.NewTimer(ctx, max(in.WindowEnd.Sub(workflow.Now(ctx)), 0))
	var debounce workflow.Future
	for {
		closed, due := false, false
		// Entries already held (carried across continue-as-new, or the signal that started the run) are due like
		// any others: without this they would wait for the next signal or the window's end.
		if holding(in) && debounce == nil {
			if in.Debounce <= 0 {
				due = true
			} else {
				debounce = workflow.NewTimer(ctx, in.Debounce)
			}
		}
		if !due {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var s activities.AggregatorSignal
				c.Receive(ctx, &s)
				add(s)
			})
			sel.AddFuture(windowTimer, func(workflow.Future) { closed = true })
			if debounce != nil {
				sel.AddFuture(debounce, func(workflow.Future) { due = true })
			}
			sel.Select(ctx)
			if closed {
				break
			}
			drain() // whatever else already arrived goes into the same flush
			if holding(in) && debounce == nil {
				if in.Debounce <= 0 {
					due = true
				} else {
					debounce = workflow.NewTimer(ctx, in.Debounce)
				}
			}
		}
		if due {
			if err := flushAggregate(ctx, &in); err != nil {
				return fail(err)
			}
			debounce = nil
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() || received >= maxSignalsPerRun {
			drain() // a signal left in the channel would be lost with this run
			in.Runs++
			return workflow.NewContinueAsNewError(ctx, IssueAggregator, in)
		}
	}

	// The window is closed: what arrived before belongs to it.
	if err := flushAggregate(ctx, &in); err != nil {
		return fail(err)
	}
	drain()
	if !holding(in) {
		return nil
	}
	if in.Kind == linsync.EventKindDigest {
		// Capped during the digest's hour, merely delivered late: the digest still takes them.
		if err := flushAggregate(ctx, &in); err != nil {
			return fail(err)
		}
		return nil
	}
	next := linsync.AggregatorInput{WorkspaceID: in.WorkspaceID, Kind: in.Kind, DedupKey: in.DedupKey,
		Window: in.Window, Debounce: in.Debounce, Decision: in.Decision, Pending: in.Pending, Staged: in.Staged,
		Runs: in.Runs + 1, LinearMaxAttempts: in.LinearMaxAttempts}
	return workflow.NewContinueAsNewError(ctx, IssueAggregator, next)
}

// resumeWindow decides the run's window. The window belongs to the dedup key and lives in Postgres, not in a run:
// a fresh run (the first entry after a run failed for good, or the replay of its dead letter) continues the window
// the first entry opened, so a failed run cannot split one host's day into two issues. A fresh run also files
// what a failed run left in Postgres: the open window's entries, or a closed window that never reached Linear.
// Only then, with no window open, does the run open one of its own.
func resumeWindow(ctx workflow.Context, in *linsync.AggregatorInput) error {
	fresh := workflow.GetInfo(ctx).ContinuedExecutionRunID == ""
	now := workflow.Now(ctx).UTC()
	if fresh || in.WindowStart.IsZero() {
		var ev *activities.Events
		var w activities.StoredWindow
		q := activities.WindowQuery{WorkspaceID: in.WorkspaceID, DedupKey: in.DedupKey, Start: in.WindowStart, At: now}
		if err := workflow.ExecuteActivity(storeContext(ctx), ev.FindWindow, q).Get(ctx, &w); err != nil {
			return fmt.Errorf("find window of %s: %w", in.DedupKey, err)
		}
		switch {
		case w.Found && (w.End.After(now) || !in.WindowStart.IsZero()):
			in.WindowStart, in.WindowEnd = w.Start.UTC(), w.End.UTC()
			if fresh && w.Entries > 0 && !holding(*in) {
				if err := syncWindow(ctx, in, w); err != nil {
					return err
				}
			}
		case w.Found && fresh && w.Entries > 0 && w.Status != linsync.FiledCreated:
			// A closed window whose issue never reached Linear: file it, then open this run's own window.
			if err := syncWindow(ctx, in, w); err != nil {
				return err
			}
		}
	}
	if in.WindowStart.IsZero() {
		// In microseconds, as Postgres keeps it, so the window reads back exactly as it was opened.
		start := now.Truncate(time.Microsecond)
		in.WindowStart, in.WindowEnd = start, start.Add(in.Window)
	}
	return nil
}

// syncWindow files a stored window's issue from what Postgres holds, adding nothing: it creates the issue when
// Linear does not have it and updates it when its text is behind; when both are current it sends nothing.
func syncWindow(ctx workflow.Context, in *linsync.AggregatorInput, w activities.StoredWindow) error {
	var ev *activities.Events
	var res activities.FileResult
	end := w.End.UTC()
	// Entries staged meanwhile belong to the open window, not to a closed one filed late.
	fin := activities.FileInput{WorkspaceID: in.WorkspaceID, Kind: in.Kind, Decision: in.Decision,
		WindowStart: w.Start.UTC(), WindowEnd: &end, Hour: workflow.Now(ctx).UTC().Truncate(time.Hour),
		TakeStaged: end.After(workflow.Now(ctx))}
	if err := callLinear(ctx, linearContext(ctx, time.Minute, in.LinearMaxAttempts), in.WorkspaceID, &res, ev.FileEntries, fin); err != nil {
		return fmt.Errorf("file stored window of %s: %w", in.DedupKey, err)
	}
	if w.Start.Equal(in.WindowStart) {
		in.Capped = res.Status == linsync.FiledCapped
	}
	return nil
}

// holding reports whether the aggregator has entries to file: staged in Postgres, or carried in its own state.
func holding(in linsync.AggregatorInput) bool { return in.Staged > 0 || len(in.Pending) > 0 }

// recordPending keeps the entries carried in the workflow's state in Postgres without talking to Linear (staged
// entries are there already).
func recordPending(ctx workflow.Context, in linsync.AggregatorInput) error {
	var ev *activities.Events
	end := in.WindowEnd
	fin := activities.FileInput{WorkspaceID: in.WorkspaceID, Kind: in.Kind, Decision: in.Decision,
		WindowStart: in.WindowStart, WindowEnd: &end, Entries: in.Pending}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return workflow.ExecuteActivity(storeContext(dctx), ev.RecordEntries, fin).Get(dctx, nil)
}

// flushAggregate files the pending entries: into the window's issue, or into the hour's digest once the cap was
// reached for this window.
func flushAggregate(ctx workflow.Context, in *linsync.AggregatorInput) error {
	if !holding(*in) {
		return nil
	}
	hour := workflow.Now(ctx).UTC().Truncate(time.Hour)
	from := ""
	// Staged entries go through FileEntries even once the window is capped: it takes them into the capped issue
	// (sending nothing to Linear), from where they go on to the digest.
	if !in.Capped || in.Staged > 0 {
		var ev *activities.Events
		var res activities.FileResult
		end := in.WindowEnd
		fin := activities.FileInput{WorkspaceID: in.WorkspaceID, Kind: in.Kind, Decision: in.Decision,
			WindowStart: in.WindowStart, WindowEnd: &end, Hour: hour, Entries: in.Pending, TakeStaged: true}
		if err := callLinear(ctx, linearContext(ctx, time.Minute, in.LinearMaxAttempts), in.WorkspaceID, &res, ev.FileEntries, fin); err != nil {
			return fmt.Errorf("file %d entries of %s: %w", len(in.Pending)+in.Staged, in.DedupKey, err)
		}
		in.Capped = res.Status == linsync.FiledCapped
		if in.Capped {
			from = res.IssueID
		}
	}
	if in.Capped && in.Kind != linsync.EventKindDigest {
		if err := forwardToDigest(ctx, in.WorkspaceID, in.Decision, in.Debounce, hour, in.Pending, from, "", in.LinearMaxAttempts); err != nil {
			return err
		}
	}
	in.Pending, in.Staged = nil, 0
	return nil
}
