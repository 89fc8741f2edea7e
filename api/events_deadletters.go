package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/workflows"
)

// planEventReplay explains, for a dead letter of event filing (FileEvent or IssueAggregator), what a replay would
// change, judged against linsync's filed issues and the issue in Linear now. It reports false for other kinds.
// Filing renders an issue from everything Postgres holds for it, never from the replayed payload alone, so a stale
// dead letter cannot overwrite newer data: the plan says so, and says whether anything would change at all.
func (s *Server) planEventReplay(ctx context.Context, d *linsync.DeadLetter, p *replayPlan) bool {
	switch d.Kind {
	case workflows.TypeFileEvent:
		var args []workflows.EventInput
		if json.Unmarshal(d.Input, &args) != nil || len(args) != 1 {
			return false
		}
		in := args[0]
		done, err := s.db.CompletedEventKeys(ctx, in.WorkspaceID, []string{in.Key})
		if err != nil {
			return false
		}
		if done[in.Key] {
			p.Reason = fmt.Sprintf("event %s was handled after this run failed (a resubmission filed it): a replay finds it "+
				"done and changes nothing", in.Key)
			return true
		}
		rc, err := s.db.EventRouting(ctx, in.WorkspaceID)
		if err != nil {
			return false
		}
		dec := workflows.RouteEvent(*rc, in.Event)
		if !dec.File {
			p.Reason = fmt.Sprintf("event %s: routing files nothing for it now (%s); a replay only marks it handled", in.Key, dec.Reason)
			return true
		}
		entry := workflows.EventEntry(in.Key, in.Event)
		s.describeFilingReplay(ctx, d, p, dec, dec.WindowStart, []linsync.FiledEntry{entry})
		return true
	case workflows.TypeIssueAggregator:
		var args []linsync.AggregatorInput
		if json.Unmarshal(d.Input, &args) != nil || len(args) != 1 {
			return false
		}
		in := args[0]
		dec := in.Decision
		dec.DedupKey = in.DedupKey
		s.describeFilingReplay(ctx, d, p, dec, in.WindowStart, in.Pending)
		return true
	}
	return false
}

// describeFilingReplay says what replaying the filing of entries into the issue of dec.DedupKey would do: the
// reason in a sentence, what it would write to Linear field by field (Linear's value now against the value the
// replay writes), and what changed since the failure, in linsync and in Linear.
func (s *Server) describeFilingReplay(ctx context.Context, d *linsync.DeadLetter, p *replayPlan, dec linsync.Decision,
	start time.Time, entries []linsync.FiledEntry) {
	dedupKey := dec.DedupKey
	f, err := s.db.FiledWindow(ctx, d.WorkspaceID, dedupKey, start, s.now())
	if err != nil {
		s.log.WarnContext(ctx, "read filed issues for a dry run", "workspace_id", d.WorkspaceID, "err", err)
		p.Reason = fmt.Sprintf("re-runs %s for %s (linsync's filed issues could not be read)", d.Kind, dedupKey)
		return
	}
	if f == nil {
		p.Reason = fmt.Sprintf("no issue exists for %s: a replay files a new one", dedupKey)
		p.Writes = createWrites(dec.TeamID, dec.Priority, dec.Labels, len(entries))
		return
	}
	missing := 0
	for _, e := range entries {
		ok, err := s.db.HasFiledEntry(ctx, f.ID, e.Key)
		if err != nil {
			s.log.WarnContext(ctx, "read filed issues for a dry run", "workspace_id", d.WorkspaceID, "err", err)
			p.Reason = fmt.Sprintf("re-runs %s for %s (linsync's filed issues could not be read)", d.Kind, dedupKey)
			return
		}
		if !ok {
			missing++
		}
	}
	name := f.Identifier
	if name == "" {
		name = "the issue"
	}
	newer := ""
	if f.UpdatedAt.After(d.LastFailed) {
		newer = fmt.Sprintf(", newer than this payload (it was updated at %s, after this run failed at %s)",
			f.UpdatedAt.UTC().Format(time.RFC3339Nano), d.LastFailed.UTC().Format(time.RFC3339Nano))
		p.SinceFailure = append(p.SinceFailure, changeSince{Field: "entries", Now: f.EntryCount, At: f.UpdatedAt, By: "linsync"})
	}
	safe := "a replay renders the issue from linsync's current state (every entry, merged labels, the most urgent " +
		"priority), never from this payload alone, so it does not overwrite newer data"
	switch {
	case f.Status == linsync.FiledCapped:
		p.Reason = fmt.Sprintf("%s for %s went to the hour's digest (creation cap)%s; %s", name, dedupKey, newer, safe)
		return
	case f.Status != linsync.FiledCreated:
		p.Reason = fmt.Sprintf("%s for %s has not reached Linear yet (%d entries recorded): a replay creates it with every "+
			"recorded entry; %s", name, dedupKey, f.EntryCount, safe)
		p.Writes = createWrites(f.TeamID, f.Priority, f.Labels, f.EntryCount)
		return
	}
	state, is := s.linearState(ctx, d.WorkspaceID, f)
	if is != nil {
		if is.UpdatedAt.After(d.LastFailed) {
			p.SinceFailure = append(p.SinceFailure, changeSince{Field: "issue", Now: is.Identifier, At: is.UpdatedAt, By: "Linear"})
		}
		if is.Title != f.Title {
			p.SinceFailure = append(p.SinceFailure, changeSince{Field: "title", Now: is.Title, At: is.UpdatedAt, By: "Linear"})
		}
		if is.Identifier != f.Identifier && f.Identifier != "" {
			p.SinceFailure = append(p.SinceFailure, changeSince{Field: "identifier", Now: is.Identifier, At: is.UpdatedAt,
				By: "Linear (moved to another team)"})
		}
	}
	if missing == 0 {
		p.Reason = fmt.Sprintf("%s for %s already lists what this dead letter carries%s%s; %s: it changes nothing in Linear",
			name, dedupKey, newer, state, safe)
		return
	}
	p.Reason = fmt.Sprintf("a replay adds %d entries to %s for %s (now %d entries%s)%s; %s", missing, name, dedupKey,
		f.EntryCount, newer, state, safe)
	p.Writes = append(p.Writes, fieldChange{Field: "entries", Before: f.EntryCount, After: f.EntryCount + missing})
	if is != nil {
		if is.Title != f.Title {
			p.Writes = append(p.Writes, fieldChange{Field: "title", Before: is.Title, After: f.Title,
				Note: "the re-rendered title replaces the one edited in Linear"})
		}
		if int(is.Priority) != f.Priority {
			p.Writes = append(p.Writes, fieldChange{Field: "priority", Before: int(is.Priority), After: f.Priority})
		}
	}
}

// createWrites is what filing a new issue writes.
func createWrites(team string, priority int, labels []string, entries int) []fieldChange {
	if labels == nil {
		labels = []string{}
	}
	return []fieldChange{{Field: "issue", After: "issueCreate"}, {Field: "team", After: team},
		{Field: "priority", After: priority}, {Field: "labels", After: labels}, {Field: "entries", After: entries}}
}

// linearState describes the filed issue as Linear has it now, or says why it could not be read; it returns the issue
// when it could.
func (s *Server) linearState(ctx context.Context, workspaceID string, f *linsync.FiledIssue) (string, *linear.IssueFields) {
	lc, _, err := s.linearFor(ctx, workspaceID)
	if err != nil {
		return "; Linear not checked: " + linsync.ErrorMessage(err), nil
	}
	r, err := linear.Issue(ctx, lc.GQL(), f.ID)
	if err != nil {
		return "; Linear not checked: " + linear.Classify(err).Message, nil
	}
	is := r.Issue.IssueFields
	listed := "its title is the one linsync last filed"
	if is.Title != f.Title {
		listed = "its title was changed in Linear since linsync's last filing"
	}
	return fmt.Sprintf("; in Linear %s was last updated at %s and %s", is.Identifier, is.UpdatedAt.UTC().Format(time.RFC3339), listed), &is
}
