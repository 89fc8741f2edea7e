package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/workflows"
)

// shortWindows lets this test's database and API take a broken-link window of seconds. Production keeps a minute
// as the floor (the API's default and the table's check); only this test's own database is changed.
func shortWindows(t *testing.T, h *fHarness) {
	t.Helper()
	_, err := h.db.Pool().Exec(t.Context(), `ALTER TABLE event_settings
		DROP CONSTRAINT event_settings_broken_link_window_seconds_check,
		ADD CONSTRAINT event_settings_broken_link_window_seconds_check CHECK (broken_link_window_seconds BETWEEN 1 AND 2592000)`)
	require.NoError(t, err)
}

func (h *fHarness) settings(body map[string]any) {
	h.t.Helper()
	code, out := h.call(http.MethodPut, "/event-settings", h.admin, body)
	require.Equal(h.t, http.StatusOK, code, "%v", out)
}

// filed returns the workspace's filed issues, newest first.
func (h *fHarness) filed() []linsync.FiledIssue {
	h.t.Helper()
	issues, _, err := h.db.ListFiledIssues(h.t.Context(), h.wsID, 100, "")
	require.NoError(h.t, err)
	return issues
}

// waitFiled waits until n issues are created in Linear holding entries entries in all.
func (h *fHarness) waitFiled(n, entries int) []linsync.FiledIssue {
	h.t.Helper()
	var issues []linsync.FiledIssue
	require.Eventually(h.t, func() bool {
		issues = h.filed()
		total := 0
		for _, f := range issues {
			if f.Status != linsync.FiledCreated {
				return false
			}
			total += f.EntryCount
		}
		return len(issues) == n && total == entries
	}, 20*time.Second, 100*time.Millisecond, "%d issues with %d entries; dead letters %v", n, entries, h.deadLetters(""))
	return issues
}

// fakeIssue returns the fake Linear's issue with id.
func (h *fHarness) fakeIssue(id string) map[string]any {
	h.t.Helper()
	for _, is := range h.fakeIssues() {
		if is["id"] == id {
			return is
		}
	}
	h.t.Fatalf("issue %s not in the fake Linear", id)
	return nil
}

func hostLink(key, host string) map[string]any {
	return brokenEvent(key, host, key, "http_5xx", "organic")
}

// TestHostWindowClosesAndNextOpensNewIssue runs a host's broken-link window on the real stack with a window of
// seconds: links inside the window share one issue; the first link after it closes opens a new issue whose
// description refers to the previous one.
func TestHostWindowClosesAndNextOpensNewIssue(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{cfg: api.Config{MinBrokenLinkWindow: 2 * time.Second}})
	shortWindows(t, h)
	code, out := h.call(http.MethodPut, "/event-settings", h.admin, map[string]any{"broken_link_window_seconds": 1})
	require.Equal(t, http.StatusUnprocessableEntity, code, "%v", out)
	h.settings(map[string]any{"broken_link_window_seconds": 3, "debounce_ms": 200})

	h.postEvent(hostLink("w1-a", "flaky.example.com"))
	h.postEvent(hostLink("w1-b", "flaky.example.com"))
	first := h.waitFiled(1, 2)[0]
	require.NotNil(t, first.WindowEnd)
	require.Equal(t, 3*time.Second, first.WindowEnd.Sub(first.WindowStart))
	// Wait out the window, then the next link.
	time.Sleep(time.Until(first.WindowEnd.Add(300 * time.Millisecond)))
	h.postEvent(hostLink("w2-a", "flaky.example.com"))
	issues := h.waitFiled(2, 3)
	second := issues[0]
	require.NotEqual(t, first.ID, second.ID, "a new window, a new issue")
	require.Equal(t, first.DedupKey, second.DedupKey)
	require.False(t, second.WindowStart.Before(*first.WindowEnd), "the new window starts after the old one ended")
	require.NotNil(t, second.PreviousIssueID)
	require.Equal(t, first.ID, *second.PreviousIssueID)
	require.Equal(t, []string{"https://s.example.me/w2-a"}, second.Links)

	// In Linear: two issues; the new one refers to the previous one by identifier, the old one is untouched.
	require.Len(t, h.fakeIssues(), 2)
	desc := h.fakeIssue(second.ID)["description"].(string)
	require.Contains(t, desc, "This continues ["+first.Identifier+"]")
	require.NotContains(t, desc, "s.example.me/w1-a", "the new issue lists only its own window's links")
	old := h.fakeIssue(first.ID)["description"].(string)
	require.Contains(t, old, "w1-a")
	require.NotContains(t, old, "s.example.me/w2-a")
	require.Equal(t, 2, h.fake.CountRequests("IssueCreate"))
}

// TestFailedAggregatorRunKeepsTheHostWindow is the regression test for "if filing fails five times, the
// aggregator run fails; the next link for that host then opens a new window, so a second issue can appear within
// 24 h". Filing fails for good (Linear forbids the credential everything): the aggregator's run fails and becomes a dead
// letter. The host's next link, once Linear allows the credential again, continues the same window: one issue, both
// links. Replaying the dead letter meanwhile starts nothing, and files nothing twice.
func TestFailedAggregatorRunKeepsTheHostWindow(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{forbiddenKey: true})
	h.settings(map[string]any{"debounce_ms": 200})
	const host = "brittle.example.com"

	h.postEvent(hostLink("f-1", host))
	dl := h.waitDeadLetters(workflows.TypeIssueAggregator, 1)[0]
	aggID := dl["workflow_id"].(string)
	require.Truef(t, strings.HasPrefix(aggID, "host-agg:") && strings.HasSuffix(aggID, host), "aggregator id %s", aggID)
	failedRun := h.waitFailed(aggID)
	require.Equal(t, failedRun, dl["run_id"])
	require.Equal(t, activities.ErrTypeLinearForbidden, dl["error_class"])
	pending := h.filed()
	require.Len(t, pending, 1, "the failed run's link is kept in Postgres")
	require.Equal(t, linsync.FiledPending, pending[0].Status)
	require.Equal(t, []string{"https://s.example.me/f-1"}, pending[0].Links)

	h.fake.AllowKey(h.apiKey)
	h.postEvent(hostLink("f-2", host))
	issues := h.waitFiled(1, 2)
	require.Equal(t, pending[0].ID, issues[0].ID, "the same window, so the same issue")
	require.Equal(t, pending[0].WindowStart, issues[0].WindowStart, "the window still starts at the first link")
	require.Len(t, h.fakeIssues(), 1, "one issue per host per window, even across a failed run")
	desc := h.fakeIssue(issues[0].ID)["description"].(string)
	for _, l := range []string{"https://s.example.me/f-1", "https://s.example.me/f-2"} {
		require.Contains(t, desc, l)
	}
	require.Equal(t, 1, h.fake.CountRequests("IssueCreate"))

	// The dead letter's run is superseded by the window's live run: a replay starts nothing and files nothing.
	plan := h.dryRun(dl["id"].(string))
	require.Equal(t, false, plan["would_replay"], "%v", plan)
	res := h.replay(dl["id"].(string))
	require.Equal(t, activities.ReplayAlreadyRunning, res["outcome"])
	time.Sleep(500 * time.Millisecond)
	require.Len(t, h.fakeIssues(), 1)
	require.Equal(t, 1, h.fake.CountRequests("IssueCreate"))
}
