package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// TestSyncStatusListsFiledIssueAndFailedEvent: an event's filing fails on every attempt (Linear answers 502 until
// the attempts run out). Sync status lists the filed issue that never reached Linear and the failed event, whose
// attempts are the five the run made, not one; after a replay files it, both leave the list.
func TestSyncStatusListsFiledIssueAndFailedEvent(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, fOptions{})
	h.fake.InjectStatus(http.StatusBadGateway, int(workflows.DefaultLinearMaxAttempts))
	wf := h.postEvent(takeoverEvent("tk-502", "edge.example.com"))
	h.waitFailed(wf)
	dl := h.waitDeadLetters(workflows.TypeFileEvent, 1)[0]
	require.EqualValues(t, workflows.DefaultLinearMaxAttempts, dl["attempts"], "the dead letter counts every attempt")

	code, out := h.call(http.MethodGet, "/sync-status", h.admin, nil)
	require.Equal(t, http.StatusOK, code, out)
	byKind := map[string]map[string]any{}
	for _, it := range out["items"].([]any) {
		m := it.(map[string]any)
		require.NotContains(t, byKind, m["kind"], "one item of each kind: %v", out["items"])
		byKind[m["kind"].(string)] = m
	}
	filed := byKind["filed_issue"]
	require.NotNil(t, filed, "the issue that never reached Linear: %v", out["items"])
	require.Equal(t, linsync.SyncPending, filed["state"])
	require.Equal(t, linsync.EventDomainTakeover, filed["event_kind"])
	require.Contains(t, filed["reason"], "not created yet")
	require.NotNil(t, filed["last_attempt_at"])

	failed := byKind["failed_event"]
	require.NotNil(t, failed, "the failed event: %v", out["items"])
	require.Equal(t, dl["id"], failed["id"])
	require.Equal(t, linsync.SyncFailed, failed["state"])
	require.Equal(t, workflows.TypeFileEvent, failed["event_kind"])
	require.InDelta(t, workflows.DefaultLinearMaxAttempts, failed["attempts"], 0, "five attempts, not one")
	require.Contains(t, failed["reason"], "LinearTransient")
	require.Equal(t, "replay", failed["next_action"])
	require.Equal(t, wf, failed["workflow_id"])
	require.Contains(t, failed["ui_url"], dl["run_id"])
	require.Equal(t, linsync.ConnectionActive, out["connection"].(map[string]any)["status"])

	res := h.replay(dl["id"].(string))
	require.Equal(t, "started", res["outcome"])
	require.Eventually(t, func() bool {
		_, out = h.call(http.MethodGet, "/sync-status", h.admin, nil)
		return len(out["items"].([]any)) == 0
	}, 30*time.Second, 100*time.Millisecond, "filed and replayed: nothing left to sync: %v", out)
	require.Len(t, h.fakeIssues(), 1)
}
