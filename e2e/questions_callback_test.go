package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// TestQuestionCallbackSignedAndRetried: a change made in Linear reaches the Q&A app as a signed callback
// (Standard Webhooks headers); an app that fails first is retried with the same webhook-id, and the delivery is
// recorded without waiting for the app.
func TestQuestionCallbackSignedAndRetried(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	type call struct {
		id, ts, sig string
		body        []byte
	}
	var mu sync.Mutex
	var calls []call
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), b})
		first := len(calls) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable) // the app is briefly down
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(app.Close)
	_, admin, err := h.db.CreateToken(t.Context(), h.wsID, "ops", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	tok := h.token
	h.token = admin
	st, out := h.do(http.MethodPut, "/question-settings", map[string]any{"callback_url": app.URL, "callback_secret": "app-secret"})
	h.token = tok
	require.Equal(t, http.StatusOK, st, out)

	id := h.createQuestion(map[string]any{"title": "Who owns the orders table?", "body": "…",
		"asker_email": h.sd.Alice.Email, "external_id": "cb-1"})
	issueID := issueOf(h.get(id))
	require.NoError(t, h.fake.Human(h.sd.Alice.Email).SetPriority(issueID, 1))
	h.waitQuestion(id, "priority from Linear", func(q map[string]any) bool { return q["priority"] == float64(1) })

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) >= 2
	}, 20*time.Second, 100*time.Millisecond, "the callback is retried after the app's failure")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, calls[0].id, calls[1].id, "a retry keeps its webhook-id, so the app can deduplicate")
	for _, c := range calls {
		require.Equal(t, activities.SignCallback([]byte("app-secret"), c.id, c.ts, c.body), c.sig, "signed over id.timestamp.body")
		require.Contains(t, string(c.body), `"priority"`)
	}
}
