package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

// actorlessProxy forwards the fake's webhooks to target with the actor removed (as Linear sends changes made by
// integrations and the system), re-signed, so that the actor guard cannot recognise linsync's own writes.
func actorlessProxy(t *testing.T, target string) string {
	t.Helper()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var payload map[string]any
		if err := json.Unmarshal(raw, &payload); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		payload["actor"] = nil
		body, err := json.Marshal(payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		req.Header.Del("Content-Length")
		req.Header.Set(linear.HeaderSignature, linear.Sign([]byte(testSecret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL
}

// deliveriesSettled waits (without testing.T: it runs in an activity) until every webhook the fake sent has been
// processed by its delivery workflow.
func (h *qHarness) deliveriesSettled(ctx context.Context) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := h.fake.Flush(ctx); err != nil {
			return fmt.Errorf("flush webhooks: %w", err)
		}
		recs, err := h.db.ListDeliveries(ctx, h.wsID, 1000)
		if err != nil {
			return fmt.Errorf("list deliveries: %w", err)
		}
		if len(recs) == h.uniqueDeliveries() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("deliveries did not settle")
}

// TestQuestionsEchoBeforeRecordWithoutActor: the webhooks carry no actor, so the actor guard is blind, and the
// webhook of linsync's own write is processed before the write is recorded in Postgres, while the app has edited
// the field again meanwhile. The value stored before the call (the write in flight) must recognise the echo: the
// app's newer edit is neither overwritten nor reported as a Linear change, and Linear gets exactly one write per
// app edit.
func TestQuestionsEchoBeforeRecordWithoutActor(t *testing.T) {
	t.Parallel()
	var h atomic.Pointer[qHarness]
	var hooked atomic.Int32
	hook := func(ctx context.Context, op string) error {
		if op != "IssueUpdate" || !hooked.CompareAndSwap(0, 1) {
			return nil
		}
		// After Linear applied the write and before linsync records it: let the echo in first.
		h.Load().fake.SetLatency(0)
		return h.Load().deliveriesSettled(ctx)
	}
	via := func(target string) string { return actorlessProxy(t, target) }
	hh := newQuestionHarnessVia(t, hook, via)
	h.Store(hh)
	id := hh.createQuestion(map[string]any{"title": "Echo window", "asker_email": "carol@example.com", "priority": 3})
	issueID := issueOf(hh.quiesce(id))
	hh.fake.ResetRequests()

	// Slow Linear down so the app's second edit lands while the first is in flight (read, stored, not yet applied).
	hh.fake.SetLatency(1500 * time.Millisecond)
	st, out := hh.do(http.MethodPatch, "/questions/"+id, map[string]any{"priority": 1})
	require.Equal(t, http.StatusOK, st, out)
	require.Eventually(t, func() bool {
		q, err := hh.db.QuestionByID(t.Context(), id)
		require.NoError(t, err)
		return q.Fields[linsync.FieldPriority].Pushing
	}, 20*time.Second, 20*time.Millisecond, "the value being written is stored before the Linear call")
	st, out = hh.do(http.MethodPatch, "/questions/"+id, map[string]any{"priority": 2})
	require.Equal(t, http.StatusOK, st, out)

	require.Eventually(t, func() bool { return hh.fake.CountRequests("IssueUpdate") >= 2 }, 30*time.Second, 100*time.Millisecond,
		"the app's newer edit is written (an echo taken for a Linear edit would have overwritten it: nothing to write)")
	q := hh.quiesce(id)
	require.Equal(t, int32(1), hooked.Load(), "the echo was processed before the record")
	require.Equal(t, float64(2), q["priority"], "the echo of the older write did not overwrite the app's newer edit")
	require.Equal(t, float64(2), hh.issue(issueID)["priority"])
	require.Equal(t, "synced", q["sync"].(map[string]any)["state"])
	require.Equal(t, map[string]int{"IssueUpdate": 2}, hh.writes(), "one write per app edit, none for an echo")
	for _, e := range hh.audit(id) {
		require.NotEqual(t, linsync.AuditConflict, e.(map[string]any)["kind"], "an echo is not a conflict: %v", e)
	}
	recs, err := hh.db.ListDeliveries(t.Context(), hh.wsID, 1000)
	require.NoError(t, err)
	for _, d := range recs {
		require.NotContains(t, d.Detail, "changed: priority", "no echo was applied to the app as a Linear change")
	}
	q2, err := hh.db.QuestionByID(t.Context(), id)
	require.NoError(t, err)
	require.False(t, q2.Fields[linsync.FieldPriority].Pushing, "the record cleared the write in flight")
}

// TestQuestionsResyncFailed: a push that fails for good leaves the question failed; UnsyncedQuestions lists it
// with its reason, attempts and next action, and ResyncQuestion (idempotent) makes its workflow write it.
func TestQuestionsResyncFailed(t *testing.T) {
	t.Parallel()
	var failed atomic.Int32
	fail := func(_ context.Context, op string) error {
		if op == "IssueUpdate" && failed.CompareAndSwap(0, 1) {
			return temporal.NewNonRetryableApplicationError("worker lost after IssueUpdate", "Test", nil)
		}
		return nil
	}
	h := newQuestionHarness(t, fail)
	id := h.createQuestion(map[string]any{"title": "Resync", "asker_email": "carol@example.com"})
	h.quiesce(id)
	none, err := h.db.UnsyncedQuestions(t.Context(), h.wsID, 10)
	require.NoError(t, err)
	require.Empty(t, none)

	st, out := h.do(http.MethodPatch, "/questions/"+id, map[string]any{"priority": 4})
	require.Equal(t, http.StatusOK, st, out)
	h.waitQuestion(id, "failed", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "failed" })
	list, err := h.db.UnsyncedQuestions(t.Context(), h.wsID, 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	u := list[0]
	require.Equal(t, id, u.QuestionID)
	require.Equal(t, linsync.SyncFailed, u.State)
	require.True(t, strings.HasPrefix(u.Reason, "update issue"), u.Reason)
	require.Equal(t, 1, u.Attempts)
	require.NotNil(t, u.LastAttemptAt)
	require.Equal(t, linsync.NextActionResync, u.NextAction)

	// Twice: signals coalesce; the question is written once more and synced.
	require.NoError(t, h.acts.ResyncQuestion(t.Context(), h.wsID, id))
	require.NoError(t, h.acts.ResyncQuestion(t.Context(), h.wsID, id))
	q := h.waitQuestion(id, "synced", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "synced" })
	require.Equal(t, float64(4), h.issue(issueOf(q))["priority"])
	q = h.quiesce(id)
	require.Equal(t, "synced", q["sync"].(map[string]any)["state"])
	require.Equal(t, 2, h.fake.CountRequests("IssueUpdate"), "the failed write and its one retry, nothing more")
	list, err = h.db.UnsyncedQuestions(t.Context(), h.wsID, 10)
	require.NoError(t, err)
	require.Empty(t, list)

	// A synced question is not signalled; an unknown one fails without retry.
	require.NoError(t, h.acts.ResyncQuestion(t.Context(), h.wsID, id))
	var appErr *temporal.ApplicationError
	err = h.acts.ResyncQuestion(t.Context(), h.wsID, "00000000-0000-0000-0000-000000000000")
	require.ErrorAs(t, err, &appErr)
	require.True(t, appErr.NonRetryable())
}
