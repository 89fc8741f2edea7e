package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// TestIssueAggregatorFreshRunContinuesStoredWindow: a host's aggregator run failed for good three hours into its
// window; the host's next link starts a fresh run, which must continue the stored window (same issue), file what
// the failed run left behind, and end with that window, not 24 h after the new link.
func TestIssueAggregatorFreshRunContinuesStoredWindow(t *testing.T) {
	t.Parallel()
	env := newBareEventsEnv(t)
	var ev *activities.Events
	now := time.Date(2026, 6, 4, 13, 0, 0, 0, time.UTC)
	stored := activities.StoredWindow{Found: true, Start: now.Add(-3 * time.Hour), End: now.Add(21 * time.Hour),
		Status: linsync.FiledPending, Entries: 2}
	var queries []activities.WindowQuery
	env.OnActivity(ev.FindWindow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, q activities.WindowQuery) (*activities.StoredWindow, error) {
			queries = append(queries, q)
			return &stored, nil
		})
	rec := &fileRecorder{}
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	env.SetStartTime(now)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(7)}})
	}, time.Minute)
	env.ExecuteWorkflow(IssueAggregator, hostStart(time.Second))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.Len(t, queries, 1)
	require.True(t, queries[0].Start.IsZero(), "a host's first run asks for the window open now")
	require.Equal(t, now, queries[0].At.UTC())
	require.Len(t, rec.calls, 2)
	require.Empty(t, rec.calls[0].Entries, "the failed run's entries, already in Postgres, are filed at once")
	require.Len(t, rec.calls[1].Entries, 1)
	for _, c := range rec.calls {
		require.Equal(t, stored.Start, c.WindowStart.UTC(), "the same window, so the same issue")
		require.Equal(t, stored.End, c.WindowEnd.UTC())
	}
	require.Equal(t, stored.End, env.Now().UTC(), "the run ends with the stored window")
}

// TestIssueAggregatorFreshRunFilesClosedWindowLeftPending: the replay of a dead letter comes after its window
// closed. The window's issue never reached Linear, so the run files it, then opens a window of its own.
func TestIssueAggregatorFreshRunFilesClosedWindowLeftPending(t *testing.T) {
	t.Parallel()
	env := newBareEventsEnv(t)
	var ev *activities.Events
	now := time.Date(2026, 6, 6, 9, 0, 0, 0, time.UTC)
	stored := activities.StoredWindow{Found: true, Start: now.Add(-30 * time.Hour), End: now.Add(-6 * time.Hour),
		Status: linsync.FiledPending, Entries: 3}
	env.OnActivity(ev.FindWindow, mock.Anything, mock.Anything).Return(&stored, nil)
	rec := &fileRecorder{}
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).Return(rec.file)
	env.SetStartTime(now)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(1)}})
	}, time.Minute)
	env.ExecuteWorkflow(IssueAggregator, hostStart(time.Second))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, rec.calls, 2)
	require.Equal(t, stored.Start, rec.calls[0].WindowStart.UTC(), "the stuck window is filed first")
	require.Empty(t, rec.calls[0].Entries)
	require.Equal(t, now, rec.calls[1].WindowStart.UTC(), "the new link opens a window of its own")
	require.Len(t, rec.calls[1].Entries, 1)
}

// TestIssueAggregatorFailureKeepsWhatItHeld: filing fails for good while another link waits in the signal
// channel. The run fails (so it becomes a dead letter), but only after both links are kept in Postgres.
func TestIssueAggregatorFailureKeepsWhatItHeld(t *testing.T) {
	t.Parallel()
	env := newEventsEnv(t)
	var ev *activities.Events
	env.OnActivity(ev.FileEntries, mock.Anything, mock.Anything).After(5*time.Second).Return(
		(*activities.FileResult)(nil), temporal.NewNonRetryableApplicationError("forbidden", activities.ErrTypeLinearForbidden, nil))
	var mu sync.Mutex
	var kept []activities.FileInput
	env.OnActivity(ev.RecordEntries, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FileInput) error {
		mu.Lock()
		defer mu.Unlock()
		kept = append(kept, in)
		return nil
	})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(1)}})
	}, time.Millisecond)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(activities.AggregatorSignalName, activities.AggregatorSignal{Entries: []linsync.FiledEntry{brokenEntry(2)}})
	}, 3*time.Second)
	env.ExecuteWorkflow(IssueAggregator, hostStart(0))
	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), "forbidden", "the run fails, so it becomes a dead letter")
	require.Len(t, kept, 1)
	keys := []string{}
	for _, e := range kept[0].Entries {
		keys = append(keys, e.Key)
	}
	require.ElementsMatch(t, []string{"link:L001", "link:L002"}, keys, "the failed filing's link and the one that arrived meanwhile")
	require.False(t, kept[0].WindowStart.IsZero())
}
