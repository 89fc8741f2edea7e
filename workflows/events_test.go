package workflows

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

func TestEventWorkflowIDs(t *testing.T) {
	t.Parallel()
	hour := time.Date(2026, 6, 4, 11, 14, 0, 0, time.UTC).Truncate(time.Hour)
	cases := []struct{ got, want string }{
		{EventWorkflowID("ws1", "evt-1"), "event:ws1:evt-1"},
		{EventWorkflowID("ws1", "01J9V7QX:a/b"), "event:ws1:01J9V7QX:a/b"},
		{HostAggregatorID("ws1", "oldcampaign.example.com"), "host-agg:ws1:oldcampaign.example.com"},
		{DigestAggregatorID("ws1", "team-1", hour), "digest-agg:ws1:team-1:2026-06-04T11"},
		{DigestAggregatorID("ws1", "team-1", hour.In(time.FixedZone("x", 3600))), "digest-agg:ws1:team-1:2026-06-04T11"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, tc.got)
	}
}

func ts(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestRouteEvent(t *testing.T) {
	t.Parallel()
	two := 2
	rc := linsync.RoutingContext{
		WorkspaceID: "ws1", DefaultTeamID: "team-default", DefaultLabels: []string{"short-link", "auto-filed"}, DefaultPriority: 3,
		Settings: linsync.RoutingContext{}.Settings,
		Rules: []linsync.RoutingRule{
			{Name: "growth", TagGlob: "campaign-*", TeamID: "team-growth", Labels: []string{"growth", "urgent"}, Priority: &two},
			{Name: "docs", TagGlob: "docs-*", TeamID: "team-docs", Labels: []string{"docs"}},
			{Name: "tls", FailureType: "tls_expired", TeamID: "team-platform", Labels: []string{"tls"}},
			{Name: "audit", EventTypes: []string{"link.created"}, TeamID: "team-compliance", FileLinkCreated: true},
			{Name: "fallback", Default: true, TeamID: "team-triage", Labels: []string{"triaged"}},
		},
	}
	rc.Settings.TagLabels = []string{"paid", "organic"}
	broken := linsync.Event{Type: "link.broken", LinkID: "L1", ShortURL: "https://s.example/x",
		DestinationURL: "https://Old.Example.com/landing", DestinationHost: "old.example.com", FailureType: "http_5xx"}
	with := func(ev linsync.Event, f func(*linsync.Event)) linsync.Event { f(&ev); return ev }

	cases := []struct {
		name     string
		rc       linsync.RoutingContext
		ev       linsync.Event
		rule     int
		team     string
		labels   []string
		priority int
		key      string
		file     bool
	}{
		{"tag glob wins first", rc, with(broken, func(e *linsync.Event) { e.Tags = []string{"campaign-spring-2026", "paid"} }),
			0, "team-growth", []string{"short-link", "auto-filed", "paid", "growth", "urgent"}, 2, "link.broken:host:old.example.com", true},
		{"second glob", rc, with(broken, func(e *linsync.Event) { e.Tags = []string{"docs-api"} }),
			1, "team-docs", []string{"short-link", "auto-filed", "docs"}, 3, "link.broken:host:old.example.com", true},
		{"failure type", rc, with(broken, func(e *linsync.Event) { e.FailureType = "tls_expired"; e.Tags = []string{"Organic"} }),
			2, "team-platform", []string{"short-link", "auto-filed", "organic", "tls"}, 3, "link.broken:host:old.example.com", true},
		{"default rule", rc, broken, 4, "team-triage", []string{"short-link", "auto-filed", "triaged"}, 3, "link.broken:host:old.example.com", true},
		{"no rules: connection defaults", linsync.RoutingContext{WorkspaceID: "ws1", DefaultTeamID: "team-default", DefaultPriority: 4},
			broken, -1, "team-default", nil, 4, "link.broken:host:old.example.com", true},
		{"click threshold keyed by link, band and hour", rc, linsync.Event{Type: "link.click_threshold", LinkID: "L1", Band: "spike",
			TriggeredAt: ts("2026-06-04T11:14:00Z")}, 4, "team-triage", []string{"short-link", "auto-filed", "triaged"}, 3,
			"link.click_threshold:L1:spike:2026-06-04T11", true},
		{"takeover is urgent", rc, linsync.Event{Type: "domain.takeover_detected", Domain: "go.example.com", DetectedAt: ts("2026-06-04T11:14:00Z")},
			4, "team-triage", []string{"short-link", "auto-filed", "triaged"}, 1, "domain.takeover_detected:go.example.com:2026-06-04", true},
		{"link.created filed when the rule asks", rc, linsync.Event{Type: "link.created", LinkID: "L9"},
			3, "team-compliance", []string{"short-link", "auto-filed"}, 3, "link.created:L9", true},
		{"link.created not filed by default", linsync.RoutingContext{WorkspaceID: "ws1", Rules: rc.Rules[4:]},
			linsync.Event{Type: "link.created", LinkID: "L9"}, 0, "team-triage", []string{"triaged"}, 0, "link.created:L9", false},
		{"scan summary per run", rc, linsync.Event{Type: "link.scan_complete", ScanID: "scan-7"},
			4, "team-triage", []string{"short-link", "auto-filed", "triaged"}, 3, "link.scan_complete:scan-7", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := RouteEvent(tc.rc, tc.ev)
			require.Equal(t, tc.rule, d.RuleIndex)
			require.Equal(t, tc.team, d.TeamID)
			if tc.labels == nil {
				require.Empty(t, d.Labels)
			} else {
				require.Equal(t, tc.labels, d.Labels)
			}
			require.Equal(t, tc.priority, d.Priority)
			require.Equal(t, tc.key, d.DedupKey)
			require.Equal(t, tc.file, d.File)
		})
	}
	require.Equal(t, "host-agg:ws1:old.example.com", RouteEvent(rc, broken).AggregatorID)
}

func TestRuleMatchesBadGlobNeverMatches(t *testing.T) {
	t.Parallel()
	ev := linsync.Event{Type: "link.broken", Tags: []string{"campaign-["}}
	require.False(t, RuleMatches(linsync.RoutingRule{TagGlob: "campaign-["}, ev))
	require.False(t, RuleMatches(linsync.RoutingRule{}, ev), "a rule with no criteria matches nothing unless default")
	require.True(t, RuleMatches(linsync.RoutingRule{TagGlob: "camp?ign-*"}, linsync.Event{Tags: []string{"x", "campaign-a"}}))
}

// newEventsEnv is a test environment for the events workflows in which Postgres holds no window yet.
func newEventsEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newBareEventsEnv(t)
	var ev *activities.Events
	env.OnActivity(ev.FindWindow, mock.Anything, mock.Anything).Return(&activities.StoredWindow{}, nil)
	return env
}

// newBareEventsEnv is a test environment for the events workflows with no activity mocked.
func newBareEventsEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Events{})
	env.RegisterWorkflow(IssueAggregator)
	return env
}

func brokenEntry(i int) linsync.FiledEntry {
	ev := linsync.Event{Type: "link.broken", LinkID: fmt.Sprintf("L%03d", i), ShortURL: fmt.Sprintf("https://s.example/l%03d", i),
		DestinationURL: "https://old.example.com/x", DestinationHost: "old.example.com", FailureType: "http_5xx"}
	return EventEntry(fmt.Sprintf("key-%d", i), ev)
}

func hostStart(debounce time.Duration) linsync.AggregatorInput {
	d := linsync.Decision{File: true, RuleIndex: -1, TeamID: "team-1", Labels: []string{"short-link"}, Priority: 3,
		DedupKey: "link.broken:host:old.example.com"}
	return linsync.AggregatorInput{WorkspaceID: "ws1", Kind: "link.broken", DedupKey: d.DedupKey, Window: 24 * time.Hour,
		Debounce: debounce, Decision: d}
}

// fileRecorder records FileEntries calls and answers them like the activity would.
type fileRecorder struct {
	mu      sync.Mutex
	calls   []activities.FileInput
	seen    map[string]bool
	capped  bool
	signals []activities.SignalInput
}

func (r *fileRecorder) file(_ context.Context, in activities.FileInput) (*activities.FileResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, in)
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	for _, e := range in.Entries {
		r.seen[e.Key] = true
	}
	if r.capped {
		return &activities.FileResult{Status: linsync.FiledCapped}, nil
	}
	return &activities.FileResult{Status: linsync.FiledCreated, IssueID: "issue-1", Created: len(r.calls) == 1}, nil
}

func (r *fileRecorder) signal(_ context.Context, in activities.SignalInput) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signals = append(r.signals, in)
	return nil
}

func TestIssueAggregatorDebouncesABurstIntoFewFilings(t *testing.T) {
	t.Parallel()
	env := newEventsEnv(t)
	var ev *activities.Events
	rec := &fileRecorder{}
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	// 800 links, one every 10 ms (8 s), with repeats of earlier links mixed in; debounce 1 s.
	for i := range 800 {
		env.RegisterDelayedCallback(func() {
			sig := activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(i)}, Decision: hostStart(0).Decision}
			env.SignalWorkflow(activities.AggregatorSignalName, sig)
			if i%50 == 0 {
				env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(0)}})
			}
		}, time.Duration(i)*10*time.Millisecond+time.Millisecond)
	}
	start := env.Now()
	env.ExecuteWorkflow(IssueAggregator, hostStart(time.Second))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.Len(t, rec.seen, 800, "every link filed")
	require.LessOrEqual(t, len(rec.calls), 10, "a burst of 800 links costs a few filings, not 800")
	require.GreaterOrEqual(t, len(rec.calls), 2)
	total := 0
	for _, c := range rec.calls {
		total += len(c.Entries)
		// Opened in microseconds, as Postgres keeps it.
		require.Equal(t, start.UTC().Truncate(time.Microsecond), c.WindowStart.UTC(), "every filing is in the one window")
		require.Equal(t, start.Add(24*time.Hour).UTC().Truncate(time.Microsecond), c.WindowEnd.UTC())
	}
	require.Less(t, total, 800+len(rec.calls)*2, "repeats inside one debounce are dropped before filing")
	require.GreaterOrEqual(t, env.Now().Sub(start), 24*time.Hour-time.Microsecond, "the run lasts its window")
}

func TestIssueAggregatorWindowsEndAndFlushWhatArrived(t *testing.T) {
	t.Parallel()
	env := newEventsEnv(t)
	var ev *activities.Events
	rec := &fileRecorder{}
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	send := func(i int, at time.Duration) {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(i)}})
		}, at)
	}
	send(1, time.Second)
	send(2, 3*time.Hour)
	send(3, 24*time.Hour-time.Second) // pending when the window closes: still this window's
	env.ExecuteWorkflow(IssueAggregator, hostStart(10*time.Second))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, rec.calls, 3)
	require.Equal(t, "link:L003", rec.calls[2].Entries[0].Key)
	for _, c := range rec.calls {
		require.Equal(t, rec.calls[0].WindowStart, c.WindowStart)
	}
}

func TestIssueAggregatorContinuesAsNewWithSignalsInFlight(t *testing.T) {
	t.Parallel()
	env := newEventsEnv(t)
	var ev *activities.Events
	rec := &fileRecorder{}
	// The first filing takes 5 s; four links arrive meanwhile and wait in the signal channel, and Temporal suggests
	// continue-as-new before the filing returns.
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).After(5 * time.Second).Return(rec.file)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(0)}})
	}, time.Millisecond)
	for i := 1; i <= 4; i++ {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(i)}})
		}, time.Duration(i)*time.Second)
	}
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, 4500*time.Millisecond)
	start := env.Now()
	env.ExecuteWorkflow(IssueAggregator, hostStart(0))
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "got %v", env.GetWorkflowError())
	require.Len(t, rec.calls, 1)
	require.Len(t, rec.calls[0].Entries, 1)
	var next linsync.AggregatorInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Len(t, next.Pending, 4, "the signals that arrived during the filing are drained into the next run, none lost")
	require.Equal(t, 1, next.Runs)
	require.Equal(t, rec.calls[0].WindowStart.UTC(), next.WindowStart.UTC(), "the window carries over; it does not restart")
	require.Equal(t, next.WindowStart.Add(24*time.Hour), next.WindowEnd)

	// The next run files what it was handed, in the same window.
	env2 := newEventsEnv(t)
	rec2 := &fileRecorder{}
	env2.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec2.file)
	env2.SetStartTime(start.Add(6 * time.Second))
	env2.ExecuteWorkflow(IssueAggregator, next)
	require.True(t, env2.IsWorkflowCompleted())
	require.NoError(t, env2.GetWorkflowError())
	require.Len(t, rec2.calls, 1)
	require.Len(t, rec2.calls[0].Entries, 4)
	require.Equal(t, next.WindowStart.UTC(), rec2.calls[0].WindowStart.UTC())
}

func TestIssueAggregatorSendsCappedWindowsToTheDigest(t *testing.T) {
	t.Parallel()
	env := newEventsEnv(t)
	var ev *activities.Events
	rec := &fileRecorder{capped: true}
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	env.OnActivity(ev.SignalAggregator, mock.Anything, mock.Anything).Return(rec.signal)
	env.SetStartTime(time.Date(2026, 6, 4, 10, 30, 0, 0, time.UTC))
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(1)}})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(2)}})
	}, 2*time.Hour)
	env.ExecuteWorkflow(IssueAggregator, hostStart(5*time.Second))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.Len(t, rec.calls, 1, "once capped, the window's later links go straight to digests")
	require.Len(t, rec.signals, 2)
	require.Equal(t, "digest-agg:ws1:team-1:2026-06-04T10", rec.signals[0].WorkflowID)
	require.Equal(t, "digest-agg:ws1:team-1:2026-06-04T12", rec.signals[1].WorkflowID, "each hour has its own digest")
	e := rec.signals[0].Signal.Entries[0]
	require.Equal(t, "link.broken:host:old.example.com", e.SourceKey)
	require.Equal(t, "link.broken:host:old.example.com|link:L001", e.Key)
	require.Equal(t, "digest", rec.signals[0].Start.Kind)
	require.Equal(t, "digest:team-1", rec.signals[0].Signal.Decision.DedupKey)
}

func TestIssueAggregatorDigestTakesLateEntries(t *testing.T) {
	t.Parallel()
	env := newEventsEnv(t)
	var ev *activities.Events
	rec := &fileRecorder{}
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	hour := time.Date(2026, 6, 4, 10, 0, 0, 0, time.UTC)
	env.SetStartTime(hour.Add(2 * time.Hour)) // started after its hour: a late forward
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(1)}})
	}, 0)
	in := linsync.AggregatorInput{WorkspaceID: "ws1", Kind: "digest", DedupKey: "digest:team-1", Window: time.Hour,
		Debounce: time.Second, WindowStart: hour, WindowEnd: hour.Add(time.Hour),
		Decision: linsync.Decision{TeamID: "team-1", DedupKey: "digest:team-1"}}
	env.ExecuteWorkflow(IssueAggregator, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, rec.calls, 1)
	require.Equal(t, hour, rec.calls[0].WindowStart.UTC())
	require.Equal(t, "digest", rec.calls[0].Kind)
}

func runFileEvent(t *testing.T, in EventInput, rc linsync.RoutingContext, rec *fileRecorder) (*EventOutcome, []string) {
	t.Helper()
	env := newEventsEnv(t)
	var ev *activities.Events
	var completed []string
	env.OnActivity(ev.LoadEventRouting, mock.Anything, mock.Anything).Return(
		func(_ context.Context, c activities.EventClaim) (*linsync.RoutingContext, error) {
			require.Equal(t, in.Key, c.Key)
			require.Equal(t, EventWorkflowID(in.WorkspaceID, in.Key), c.WorkflowID)
			return &rc, nil
		})
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	env.OnActivity(ev.SignalAggregator, mock.Anything, mock.Anything).Return(rec.signal)
	env.OnActivity(ev.CompleteEvent, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _, key string) error { completed = append(completed, key); return nil })
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: EventWorkflowID(in.WorkspaceID, in.Key)})
	env.SetStartTime(time.Date(2026, 6, 4, 11, 20, 0, 0, time.UTC))
	env.ExecuteWorkflow(FileEvent, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var out EventOutcome
	require.NoError(t, env.GetWorkflowResult(&out))
	return &out, completed
}

func TestFileEventRoutesEachKind(t *testing.T) {
	t.Parallel()
	rc := linsync.RoutingContext{WorkspaceID: "ws1", DefaultTeamID: "team-1"}
	rc.Settings.BrokenLinkWindow, rc.Settings.Debounce = 24*time.Hour, 2*time.Second

	t.Run("broken link goes to its host's aggregator", func(t *testing.T) {
		t.Parallel()
		rec := &fileRecorder{}
		out, _ := runFileEvent(t, EventInput{WorkspaceID: "ws1", Key: "k1", Event: brokenEntry(1).Event}, rc, rec)
		require.Equal(t, EventAggregated, out.Status)
		require.Empty(t, rec.calls)
		require.Len(t, rec.signals, 1)
		s := rec.signals[0]
		require.Equal(t, "host-agg:ws1:old.example.com", s.WorkflowID)
		require.Equal(t, "k1", s.CompleteKey, "the event is complete once its aggregator holds it")
		require.Equal(t, 24*time.Hour, s.Start.Window)
		require.Equal(t, 2*time.Second, s.Start.Debounce)
		require.Equal(t, "link:L001", s.Signal.Entries[0].Key)
	})
	t.Run("click threshold files its issue", func(t *testing.T) {
		t.Parallel()
		rec := &fileRecorder{}
		ev := linsync.Event{Type: "link.click_threshold", LinkID: "L1", ShortURL: "https://s.example/x", Band: "cliff",
			TriggeredAt: ts("2026-06-04T11:14:00Z")}
		out, _ := runFileEvent(t, EventInput{WorkspaceID: "ws1", Key: "k2", Event: ev}, rc, rec)
		require.Equal(t, EventFiled, out.Status)
		require.Len(t, rec.calls, 1)
		require.Equal(t, "link.click_threshold:L1:cliff:2026-06-04T11", rec.calls[0].Decision.DedupKey)
		require.Equal(t, "k2", rec.calls[0].CompleteKey)
		require.Equal(t, time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC), rec.calls[0].Hour)
	})
	t.Run("past the cap it goes to the digest", func(t *testing.T) {
		t.Parallel()
		rec := &fileRecorder{capped: true}
		ev := linsync.Event{Type: "link.click_threshold", LinkID: "L1", Band: "spike", TriggeredAt: ts("2026-06-04T11:14:00Z")}
		out, _ := runFileEvent(t, EventInput{WorkspaceID: "ws1", Key: "k3", Event: ev}, rc, rec)
		require.Equal(t, EventDigested, out.Status)
		require.Len(t, rec.signals, 1)
		require.Equal(t, "digest-agg:ws1:team-1:2026-06-04T11", rec.signals[0].WorkflowID)
		require.Equal(t, "k3", rec.signals[0].CompleteKey)
	})
	t.Run("link.created without a rule asking is skipped", func(t *testing.T) {
		t.Parallel()
		rec := &fileRecorder{}
		out, completed := runFileEvent(t, EventInput{WorkspaceID: "ws1", Key: "k4", Event: linsync.Event{Type: "link.created", LinkID: "L1"}}, rc, rec)
		require.Equal(t, EventSkipped, out.Status)
		require.Empty(t, rec.calls)
		require.Equal(t, []string{"k4"}, completed)
	})
	t.Run("a handled event is a duplicate", func(t *testing.T) {
		t.Parallel()
		rec := &fileRecorder{}
		out, completed := runFileEvent(t, EventInput{WorkspaceID: "ws1", Key: "k5", Event: brokenEntry(1).Event},
			linsync.RoutingContext{Duplicate: true}, rec)
		require.Equal(t, EventDuplicate, out.Status)
		require.Empty(t, rec.calls)
		require.Empty(t, rec.signals)
		require.Empty(t, completed)
	})
}
