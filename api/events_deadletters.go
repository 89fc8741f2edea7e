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
		p.Reason = s.describeFilingReplay(ctx, d, dec.DedupKey, dec.WindowStart, []linsync.FiledEntry{entry})
		return true
	case workflows.TypeIssueAggregator:
		var args []linsync.AggregatorInput
		if json.Unmarshal(d.Input, &args) != nil || len(args) != 1 {
			return false
		}
		in := args[0]
		p.Reason = s.describeFilingReplay(ctx, d, in.DedupKey, in.WindowStart, in.Pending)
		return true
	}
	return false
}

// describeFilingReplay says what replaying the filing of entries into the issue of dedupKey would do.
func (s *Server) describeFilingReplay(ctx context.Context, d *linsync.DeadLetter, dedupKey string, start time.Time,
	entries []linsync.FiledEntry) string {
	f, err := s.db.FiledWindow(ctx, d.WorkspaceID, dedupKey, start, s.now())
	if err != nil {
		s.log.WarnContext(ctx, "read filed issues for a dry run", "workspace_id", d.WorkspaceID, "err", err)
		return fmt.Sprintf("re-runs %s for %s (linsync's filed issues could not be read)", d.Kind, dedupKey)
	}
	if f == nil {
		return fmt.Sprintf("no issue exists for %s: a replay files a new one", dedupKey)
	}
	missing := 0
	for _, e := range entries {
		ok, err := s.db.HasFiledEntry(ctx, f.ID, e.Key)
		if err != nil {
			s.log.WarnContext(ctx, "read filed issues for a dry run", "workspace_id", d.WorkspaceID, "err", err)
			return fmt.Sprintf("re-runs %s for %s (linsync's filed issues could not be read)", d.Kind, dedupKey)
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
	}
	safe := "a replay renders the issue from linsync's current state (every entry, merged labels, the most urgent " +
		"priority), never from this payload alone, so it does not overwrite newer data"
	switch {
	case f.Status == linsync.FiledCapped:
		return fmt.Sprintf("%s for %s went to the hour's digest (creation cap)%s; %s", name, dedupKey, newer, safe)
	case f.Status != linsync.FiledCreated:
		return fmt.Sprintf("%s for %s has not reached Linear yet (%d entries recorded): a replay creates it with every "+
			"recorded entry; %s", name, dedupKey, f.EntryCount, safe)
	case missing == 0:
		return fmt.Sprintf("%s for %s already lists what this dead letter carries%s%s; %s: it changes nothing in Linear",
			name, dedupKey, newer, s.linearState(ctx, d.WorkspaceID, f), safe)
	}
	return fmt.Sprintf("a replay adds %d entries to %s for %s (now %d entries%s)%s; %s", missing, name, dedupKey,
		f.EntryCount, newer, s.linearState(ctx, d.WorkspaceID, f), safe)
}

// linearState describes the filed issue as Linear has it now, or says why it could not be read.
func (s *Server) linearState(ctx context.Context, workspaceID string, f *linsync.FiledIssue) string {
	lc, _, err := s.linearFor(ctx, workspaceID)
	if err != nil {
		return "; Linear not checked: " + linsync.ErrorMessage(err)
	}
	r, err := linear.Issue(ctx, lc.GQL(), f.ID)
	if err != nil {
		return "; Linear not checked: " + linear.Classify(err).Message
	}
	is := r.Issue.IssueFields
	listed := "its title is the one linsync last filed"
	if is.Title != f.Title {
		listed = "its title was changed in Linear since linsync's last filing"
	}
	return fmt.Sprintf("; in Linear %s was last updated at %s and %s", is.Identifier, is.UpdatedAt.UTC().Format(time.RFC3339), listed)
}
