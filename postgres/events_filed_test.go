package postgres_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linsynctest"
)

// TestFilingCompareAndSet files one issue from several writers without any transaction spanning a round: a late,
// older result is not recorded (and what Linear shows is forgotten, so the next round sends the newest again), a
// live writer's lease keeps others out until it finishes, and a writer that finishes while entries arrived is told
// it is behind.
func TestFilingCompareAndSet(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	start := time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC)
	id := uuid.NewString()
	record := func(key string) int64 {
		t.Helper()
		f, added, err := db.RecordFiling(ctx, linsync.FiledIssueInput{ID: id, WorkspaceID: ws.ID, Kind: linsync.EventClickThreshold,
			DedupKey: "click:l:spike:h", WindowStart: start, TeamID: "team-1", RuleIndex: -1, Labels: []string{"a"},
			Entries: []linsync.FiledEntry{{Key: key, EventKey: key, Event: linsync.Event{Type: linsync.EventClickThreshold}}}})
		require.NoError(t, err)
		require.Equal(t, 1, added)
		return f.ContentVersion
	}
	prepare := func(writer string, until time.Time) *linsync.FilingPlan {
		t.Helper()
		p, err := db.PrepareFiling(ctx, linsync.FilingRequest{ID: id, Writer: writer, LeaseUntil: until, Hour: start,
			CapPerHour: 5, DigestID: func(string) string { return uuid.NewString() }})
		require.NoError(t, err)
		return p
	}
	finish := func(writer string, version int64, title string) linsync.FinishOutcome {
		t.Helper()
		out, err := db.FinishFiling(ctx, linsync.FilingResult{ID: id, Writer: writer, Version: version,
			Identifier: "ENG-1", URL: "https://linear.app/x/ENG-1", Title: title, Hash: "hash-" + title, Labels: []string{"a"}})
		require.NoError(t, err)
		return out
	}
	row := func() linsync.FiledIssue {
		t.Helper()
		f, err := db.FiledWindow(ctx, ws.ID, "click:l:spike:h", start, start)
		require.NoError(t, err)
		require.NotNil(t, f)
		return *f
	}

	v1 := record("e1")
	// A's attempt read version 1 and then overran its deadline (its lease expired) while Linear was slow.
	a := prepare("A", time.Now().Add(-time.Second))
	require.False(t, a.Busy)
	require.Equal(t, v1, a.Issue.ContentVersion)
	require.Len(t, a.Entries, 1)
	v2 := record("e2")
	require.Greater(t, v2, v1)
	// B takes the expired lease, reads version 2 and records it first.
	b := prepare("B", time.Now().Add(time.Minute))
	require.False(t, b.Busy)
	require.Equal(t, v2, b.Issue.ContentVersion)
	require.Len(t, b.Entries, 2)
	require.Equal(t, linsync.FinishOutcome{Recorded: true}, finish("B", v2, "new"))

	// A's older result arrives late: it is not recorded, and it is told to file again.
	require.Equal(t, linsync.FinishOutcome{Recorded: false, Behind: true}, finish("A", v1, "old"))
	f := row()
	require.Equal(t, linsync.FiledCreated, f.Status)
	require.Equal(t, "new", f.Title, "an older result never overwrites a newer one")
	require.Equal(t, v2, f.AppliedVersion, "an older result never marks newer entries filed")
	require.Empty(t, f.AppliedHash, "A's write may have reached Linear after B's: the next round sends the newest again")

	// C holds a live lease: D gets nothing to send, and C is told of the entry recorded while it wrote.
	c := prepare("C", time.Now().Add(time.Minute))
	require.False(t, c.Busy)
	v3 := record("e3")
	d := prepare("D", time.Now().Add(time.Minute))
	require.True(t, d.Busy, "a live writer keeps others out")
	require.Empty(t, d.Entries)
	require.Equal(t, linsync.FinishOutcome{Recorded: true, Behind: true}, finish("C", c.Issue.ContentVersion, "c"))
	require.Less(t, row().AppliedVersion, v3, "the entry that arrived while C wrote is not marked filed")

	// C released its lease on finishing: D (or C again) files the newest version.
	d = prepare("D", time.Now().Add(time.Minute))
	require.False(t, d.Busy)
	require.Equal(t, v3, d.Issue.ContentVersion)
	require.Len(t, d.Entries, 3)
	require.NoError(t, db.ReleaseFiling(ctx, id, "someone-else"))
	require.True(t, prepare("E", time.Now().Add(time.Minute)).Busy, "only the holder releases its lease")
	require.Equal(t, linsync.FinishOutcome{Recorded: true}, finish("D", v3, "d"))
	f = row()
	require.Equal(t, v3, f.AppliedVersion)
	require.Equal(t, "hash-d", f.AppliedHash)
	require.Equal(t, "ENG-1", f.Identifier)
	require.False(t, prepare("E", time.Now().Add(time.Minute)).Busy, "a finished writer holds nothing")

	// An attempt left its lease behind (its release failed while Postgres restarted): another writer is told how
	// long it is busy, the next attempt of the same activity takes the lease over at once.
	require.NoError(t, db.ReleaseFiling(ctx, id, "E"))
	until := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	require.False(t, prepare("run-1/11/1", until).Busy)
	busy := prepare("F", time.Now().Add(time.Minute))
	require.True(t, busy.Busy)
	require.WithinDuration(t, until, busy.BusyUntil, time.Millisecond)
	p, err := db.PrepareFiling(ctx, linsync.FilingRequest{ID: id, Writer: "run-1/11/2", Predecessor: "run-1/11/",
		LeaseUntil: time.Now().Add(time.Minute), Hour: start, CapPerHour: 5, DigestID: func(string) string { return uuid.NewString() }})
	require.NoError(t, err)
	require.False(t, p.Busy, "Temporal runs one attempt at a time: an earlier attempt's lease is dead")
	require.Len(t, p.Entries, 3)
	p, err = db.PrepareFiling(ctx, linsync.FilingRequest{ID: id, Writer: "run-2/11/1", Predecessor: "run-2/11/",
		LeaseUntil: time.Now().Add(time.Minute), Hour: start, CapPerHour: 5, DigestID: func(string) string { return uuid.NewString() }})
	require.NoError(t, err)
	require.True(t, p.Busy, "another run's attempt is not a predecessor")
}

// TestFilingCapDecidedBeforeLinear records the cap's answer in PrepareFiling's own short transaction: a capped
// issue names its digest, takes no lease and reads nothing to send, and asking again gives the same answer.
func TestFilingCapDecidedBeforeLinear(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	hour := time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC)
	digest := uuid.NewString()
	var ids []string
	for i := range 2 {
		f, _, err := db.RecordFiling(ctx, linsync.FiledIssueInput{ID: uuid.NewString(), WorkspaceID: ws.ID,
			Kind: linsync.EventScanComplete, DedupKey: "scan:" + string(rune('a'+i)), WindowStart: hour, TeamID: "team-1",
			RuleIndex: -1, Entries: []linsync.FiledEntry{{Key: "k", EventKey: "k", Event: linsync.Event{Type: linsync.EventScanComplete}}}})
		require.NoError(t, err)
		ids = append(ids, f.ID)
	}
	req := func(id, writer string) linsync.FilingRequest {
		return linsync.FilingRequest{ID: id, Writer: writer, LeaseUntil: time.Now().Add(time.Minute), Hour: hour, CapPerHour: 1,
			DigestID: func(team string) string { require.Equal(t, "team-1", team); return digest }}
	}
	first, err := db.PrepareFiling(ctx, req(ids[0], "A"))
	require.NoError(t, err)
	require.Equal(t, linsync.FiledPending, first.Issue.Status)
	require.Len(t, first.Entries, 1)
	for _, w := range []string{"B", "C"} {
		second, err := db.PrepareFiling(ctx, req(ids[1], w))
		require.NoError(t, err)
		require.Equal(t, linsync.FiledCapped, second.Issue.Status)
		require.Equal(t, digest, *second.Issue.DigestIssueID)
		require.False(t, second.Busy)
		require.Empty(t, second.Entries)
	}
	again, err := db.PrepareFiling(ctx, req(ids[0], "A"))
	require.NoError(t, err)
	require.Equal(t, linsync.FiledPending, again.Issue.Status, "a retried round keeps its slot")
}

// TestFiledIssuesPageIsBoundedByLinks: an issue lists every affected link, so a page of filed issues ends early
// rather than carry more than its share of links, and the next page carries on where it stopped.
func TestFiledIssuesPageIsBoundedByLinks(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	start := time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC)
	for i := range 3 {
		f, _, err := db.RecordFiling(ctx, linsync.FiledIssueInput{ID: uuid.NewString(), WorkspaceID: ws.ID, Kind: linsync.EventLinkBroken,
			DedupKey: "host:" + string(rune('a'+i)), WindowStart: start, TeamID: "team-1", RuleIndex: -1,
			Entries: []linsync.FiledEntry{{Key: "seed", EventKey: "seed", Event: linsync.Event{Type: linsync.EventLinkBroken}}}})
		require.NoError(t, err)
		_, err = db.Pool().Exec(ctx, `INSERT INTO filed_issue_entries (issue_id, entry_key, event_key, short_url, event)
			SELECT $1, 'k' || n, 'k' || n, 'https://sho.rt/' || n, '{}' FROM generate_series(1, 12000) n`, f.ID)
		require.NoError(t, err)
	}
	var pages, issues int
	cursor := ""
	for {
		page, next, err := db.ListFiledIssues(ctx, ws.ID, 100, cursor)
		require.NoError(t, err)
		links := 0
		for _, f := range page {
			links += len(f.Links)
		}
		require.LessOrEqual(t, len(page), 1, "two issues of 12,000 links are more than a page carries")
		require.LessOrEqual(t, links, 20000)
		pages, issues = pages+1, issues+len(page)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, 3, issues)
	require.Equal(t, 3, pages)
}

// TestRepairFiledIssueLinkIgnoresTitleSlug: Linear's issue URL ends in a slug of the title, which changes whenever
// linsync updates the title ("… and 2 more on host"). A URL that differs only there is kept current silently and is
// not drift; a new identifier (the issue moved to another team) is.
func TestRepairFiledIssueLinkIgnoresTitleSlug(t *testing.T) {
	t.Parallel()
	db := linsynctest.DB(t)
	ctx := t.Context()
	ws, err := db.CreateWorkspace(ctx, "acme", "Acme")
	require.NoError(t, err)
	start := time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC)
	id := uuid.NewString()
	_, _, err = db.RecordFiling(ctx, linsync.FiledIssueInput{ID: id, WorkspaceID: ws.ID, Kind: linsync.EventLinkBroken,
		DedupKey: "link.broken:host:shop.example.com", WindowStart: start, TeamID: "team-1", RuleIndex: -1,
		Entries: []linsync.FiledEntry{{Key: "link:1", EventKey: "e1", Event: linsync.Event{Type: linsync.EventLinkBroken}}}})
	require.NoError(t, err)
	_, err = db.FinishFiling(ctx, linsync.FilingResult{ID: id, Writer: "w", Version: 1, Identifier: "SUP-1",
		URL: "https://linear.app/acme/issue/SUP-1/broken-link-a", Title: "Broken link: /a", Hash: "h"})
	require.NoError(t, err)

	drift, err := db.RepairFiledIssueLink(ctx, ws.ID, id, "SUP-1", "https://linear.app/acme/issue/SUP-1/broken-link-a-and-2-more")
	require.NoError(t, err)
	require.False(t, drift, "a new title slug is not drift")
	f, err := db.FiledWindow(ctx, ws.ID, "link.broken:host:shop.example.com", start, start)
	require.NoError(t, err)
	require.Equal(t, "https://linear.app/acme/issue/SUP-1/broken-link-a-and-2-more", f.URL, "the URL is kept current")

	drift, err = db.RepairFiledIssueLink(ctx, ws.ID, id, "OPS-7", "https://linear.app/acme/issue/OPS-7/broken-link-a-and-2-more")
	require.NoError(t, err)
	require.True(t, drift, "a move to another team is drift")
	drift, err = db.RepairFiledIssueLink(ctx, ws.ID, id, "OPS-7", "https://linear.app/acme/issue/OPS-7/broken-link-a-and-2-more")
	require.NoError(t, err)
	require.False(t, drift, "repaired once")
}
