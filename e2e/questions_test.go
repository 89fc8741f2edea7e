package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear/lineartest"
)

// qHarness is the whole loop: the API and a worker with the question activities on a real Temporal dev server and
// a real Postgres, the workspace connected to the fake Linear, whose webhooks post back to the API.
type qHarness struct {
	*stack
	token string // questions:write
	acts  *activities.Questions
}

func newQuestionHarness(t *testing.T, failAfter func(ctx context.Context, op string) error) *qHarness {
	t.Helper()
	return newQuestionHarnessVia(t, failAfter, nil)
}

// newQuestionHarnessVia is newQuestionHarness with the fake's webhooks sent to via(the API's webhook URL) instead,
// for tests that tamper with deliveries on the way.
func newQuestionHarnessVia(t *testing.T, failAfter func(ctx context.Context, op string) error, via func(target string) string) *qHarness {
	t.Helper()
	s := newStack(t, stackOptions{linear: lineartest.Options{Now: tickingClock()}, afterLinearWrite: failAfter,
		worker:    stackWorker{deliveries: true, questions: true, deadLetters: true},
		workspace: "qa", workspaceName: "QA", webhook: webhookStored, connect: &stackConnection{labels: []string{"Customer"}},
		tokens: []stackToken{{"qa", []string{linsync.ScopeQuestionsWrite}}}, deliver: true, via: via})
	return &qHarness{stack: s, token: s.tokens["qa"], acts: s.acts.Questions}
}

// tickingClock is the wall clock, advanced at least a millisecond per reading: Linear stamps updatedAt in
// milliseconds, and a test's scripted "human" makes several edits within one, which real people do not.
func tickingClock() func() time.Time {
	var mu sync.Mutex
	var last time.Time
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !now.After(last.Add(time.Millisecond)) {
			now = last.Add(time.Millisecond)
		}
		last = now
		return now
	}
}

func (h *qHarness) do(method, path string, body any) (int, map[string]any) {
	h.t.Helper()
	resp, raw := h.request(http.DefaultClient, method, "/v1/workspaces/"+h.ws+path, body,
		"Authorization", "Bearer "+h.token, "Content-Type", "application/json")
	var out map[string]any
	require.NoError(h.t, json.Unmarshal(raw, &out), string(raw))
	return resp.StatusCode, out
}

func (h *qHarness) get(id string) map[string]any {
	h.t.Helper()
	st, out := h.do(http.MethodGet, "/questions/"+id, nil)
	require.Equal(h.t, http.StatusOK, st, out)
	return out["question"].(map[string]any)
}

// waitQuestion polls the question until cond holds.
func (h *qHarness) waitQuestion(id, what string, cond func(q map[string]any) bool) map[string]any {
	h.t.Helper()
	var q map[string]any
	require.Eventually(h.t, func() bool { q = h.get(id); return cond(q) }, 30*time.Second, 100*time.Millisecond,
		"question %s: %s; last seen %v", id, what, q)
	return q
}

// quiesce waits until the fake has delivered every webhook and the question's sync is done.
func (h *qHarness) quiesce(id string) map[string]any {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
	defer cancel()
	var q map[string]any
	require.Eventually(h.t, func() bool {
		require.NoError(h.t, h.fake.Flush(ctx))
		recs, err := h.db.ListDeliveries(ctx, h.wsID, 1000)
		require.NoError(h.t, err)
		q = h.get(id)
		return len(recs) == h.uniqueDeliveries() && q["sync"].(map[string]any)["state"] != "pending"
	}, 30*time.Second, 200*time.Millisecond)
	require.NoError(h.t, h.fake.Flush(ctx))
	return q
}

func (h *qHarness) uniqueDeliveries() int {
	seen := map[string]bool{}
	for _, d := range h.fake.Deliveries() {
		if !d.Dropped {
			seen[d.ID] = true
		}
	}
	return len(seen)
}

// writes counts the mutations linsync sent to the fake Linear.
func (h *qHarness) writes() map[string]int {
	out := map[string]int{}
	for _, op := range []string{"IssueCreate", "IssueUpdate", "CommentCreate", "IssueLabelCreate"} {
		if n := h.fake.CountRequests(op); n > 0 {
			out[op] = n
		}
	}
	return out
}

func (h *qHarness) createQuestion(body map[string]any) string {
	h.t.Helper()
	st, out := h.do(http.MethodPost, "/questions", body)
	require.Equal(h.t, http.StatusCreated, st, out)
	id := out["question"].(map[string]any)["id"].(string)
	h.waitQuestion(id, "synced", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "synced" })
	return id
}

func issueOf(q map[string]any) string { return q["linear"].(map[string]any)["issue_id"].(string) }

func (h *qHarness) issue(id string) map[string]any {
	h.t.Helper()
	resp, err := http.Get(h.fake.BaseURL() + "/_fake/state")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var st struct {
		Issues []map[string]any `json:"issues"`
	}
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&st))
	for _, is := range st.Issues {
		if is["id"] == id {
			return is
		}
	}
	h.t.Fatalf("issue %s not in the fake", id)
	return nil
}

func (h *qHarness) audit(id string) []any {
	h.t.Helper()
	st, out := h.do(http.MethodGet, "/questions/"+id+"/audit", nil)
	require.Equal(h.t, http.StatusOK, st)
	return out["audit"].([]any)
}

// TestQuestionsEndToEnd runs the whole loop: create, reply, human edits, echoes, in both directions.
func TestQuestionsEndToEnd(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	alice := h.fake.Human(h.sd.Alice.Email)

	// Warm the client's caches (team, states, labels, users) so the counts below are the hot path only.
	lc, _, err := h.acts.Linear.For(t.Context(), h.wsID)
	require.NoError(t, err)
	_, err = lc.LabelIDs(t.Context(), h.sd.Triage.ID, []string{"Customer"})
	require.NoError(t, err)
	_, err = lc.UserByEmail(t.Context(), h.sd.Bob.Email)
	require.NoError(t, err)
	h.fake.ResetRequests()

	// Create -> one issueCreate, in Triage, with default labels, priority, asker and assignee.
	id := h.createQuestion(map[string]any{"title": "Where is the churn table?", "body": "Need it for Q3.",
		"asker_email": "carol@example.com", "assignee_email": "Bob@Example.com", "external_id": "qa-1"})
	q := h.quiesce(id)
	issueID := issueOf(q)
	require.Equal(t, map[string]int{"IssueCreate": 1}, h.writes(), "one request per create, no echo write")
	require.Equal(t, 1, h.fake.CountRequests(""), "no look-up on the hot path once caches are warm")
	is := h.issue(issueID)
	require.Equal(t, h.sd.Triage.States["triage"], is["stateId"])
	require.Equal(t, h.sd.Bob.ID, is["assigneeId"])
	require.Equal(t, float64(3), is["priority"], "the connection's default priority")
	require.Contains(t, is["labelIds"], h.sd.Triage.Labels["Customer"])
	require.Contains(t, is["description"], "carol@example.com")
	require.Equal(t, "open", q["status"])
	require.NotEmpty(t, q["linear"].(map[string]any)["identifier"])
	require.NotEmpty(t, q["linear"].(map[string]any)["url"])

	// The same external_id again is the same question: 200, no second issue.
	st, out := h.do(http.MethodPost, "/questions", map[string]any{"title": "Where is the churn table?",
		"asker_email": "carol@example.com", "external_id": "qa-1"})
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, id, out["question"].(map[string]any)["id"])

	// Reply -> one commentCreate naming its author; its webhook is not a new reply.
	h.fake.ResetRequests()
	st, out = h.do(http.MethodPost, "/questions/"+id+"/replies", map[string]any{"body": "It is in analytics.churn",
		"author_email": "dave@example.com", "external_id": "r-1"})
	require.Equal(t, http.StatusCreated, st, out)
	h.quiesce(id)
	require.Eventually(t, func() bool { return h.fake.CountRequests("CommentCreate") == 1 }, 30*time.Second, 100*time.Millisecond)
	h.quiesce(id)
	require.Equal(t, map[string]int{"CommentCreate": 1}, h.writes())
	_, out = h.do(http.MethodGet, "/questions/"+id+"/replies", nil)
	require.Len(t, out["replies"], 1, "linsync's own comment did not come back as a reply")

	// App edits -> one issueUpdate for both fields; the echo changes nothing and writes nothing.
	h.fake.ResetRequests()
	st, out = h.do(http.MethodPatch, "/questions/"+id, map[string]any{"priority": 1, "status": "in_progress"})
	require.Equal(t, http.StatusOK, st, out)
	h.waitQuestion(id, "pushed", func(q map[string]any) bool { return h.fake.CountRequests("IssueUpdate") == 1 })
	h.quiesce(id)
	require.Equal(t, map[string]int{"IssueUpdate": 1}, h.writes(), "one request per change, no echo write")
	require.Equal(t, 1, h.fake.CountRequests(""))
	is = h.issue(issueID)
	require.Equal(t, float64(1), is["priority"])
	require.Equal(t, h.sd.Triage.States["started"], is["stateId"])

	// Human edits in Linear -> the question changes, with zero Linear requests and no write back.
	h.fake.ResetRequests()
	require.NoError(t, alice.SetState(issueID, "completed"))
	require.NoError(t, alice.SetAssignee(issueID, h.sd.Alice.Email))
	require.NoError(t, alice.SetPriority(issueID, 4))
	require.NoError(t, alice.SetTitle(issueID, "Churn table location"))
	_, err = alice.Comment(issueID, "See the data catalog entry.")
	require.NoError(t, err)
	h.waitQuestion(id, "Linear edits applied", func(q map[string]any) bool {
		return q["status"] == "answered" && q["assignee_email"] == h.sd.Alice.Email && q["priority"] == float64(4) &&
			q["title"] == "Churn table location"
	})
	h.quiesce(id)
	require.Zero(t, h.fake.CountRequests(""), "applying Linear changes costs no Linear request and writes nothing back")
	_, out = h.do(http.MethodGet, "/questions/"+id+"/replies", nil)
	replies := out["replies"].([]any)
	require.Len(t, replies, 2)
	last := replies[1].(map[string]any)
	require.Equal(t, "linear", last["source"])
	require.Equal(t, h.sd.Alice.Email, last["author_email"])

	// Delete in Linear -> unlinked and said so.
	require.NoError(t, alice.DeleteIssue(issueID))
	q = h.waitQuestion(id, "unlinked", func(q map[string]any) bool { return q["sync"].(map[string]any)["state"] == "unlinked" })
	require.Contains(t, q["sync"].(map[string]any)["reason"], "deleted in Linear")
	require.False(t, q["linear"].(map[string]any)["linked"].(bool))
	kinds := []string{}
	for _, e := range h.audit(id) {
		kinds = append(kinds, e.(map[string]any)["kind"].(string))
	}
	require.Contains(t, kinds, linsync.AuditUnlinked)
}

// TestQuestionsWebhookFaults: duplicated, delayed and reordered webhooks converge on Linear's final state.
func TestQuestionsWebhookFaults(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	id := h.createQuestion(map[string]any{"title": "Faults", "asker_email": "carol@example.com"})
	issueID := issueOf(h.quiesce(id))
	alice := h.fake.Human(h.sd.Alice.Email)
	h.fake.ResetRequests()

	h.fake.InjectDeliveryFault(lineartest.DeliveryFault{Mode: lineartest.DeliveryDuplicate, Count: 1})
	require.NoError(t, alice.SetPriority(issueID, 2))
	h.fake.InjectDeliveryFault(lineartest.DeliveryFault{Mode: lineartest.DeliveryDelay, Count: 1, Delay: 1500 * time.Millisecond})
	require.NoError(t, alice.SetState(issueID, "started"))
	require.NoError(t, alice.SetState(issueID, "completed"))
	h.fake.InjectDeliveryFault(lineartest.DeliveryFault{Mode: lineartest.DeliveryReorder, Count: 2})
	require.NoError(t, alice.SetTitle(issueID, "first"))
	require.NoError(t, alice.SetTitle(issueID, "second"))
	time.Sleep(2 * time.Second) // let the delayed delivery land after the later ones
	q := h.quiesce(id)
	require.Equal(t, "answered", q["status"], "the delayed 'started' did not overwrite the later 'completed'")
	require.Equal(t, "second", q["title"], "the reordered older title lost")
	require.Equal(t, float64(2), q["priority"])
	require.Zero(t, h.fake.CountRequests(""), "no write back, no look-up")
	stale := 0
	for _, e := range h.audit(id) {
		if e.(map[string]any)["kind"] == linsync.AuditStaleLinear {
			stale++
		}
	}
	require.GreaterOrEqual(t, stale, 2, "both stale deliveries are in the audit")
}

// TestQuestionsSameFieldBothSides: the app and Linear edit the same field; the later edit wins on both sides, the
// conflict is recorded, and nothing loops.
func TestQuestionsSameFieldBothSides(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	id := h.createQuestion(map[string]any{"title": "Both sides", "asker_email": "carol@example.com", "priority": 3})
	issueID := issueOf(h.quiesce(id))
	alice := h.fake.Human(h.sd.Alice.Email)

	// Linear first (its webhook held back), then the app: the app's edit is later and must win everywhere.
	h.fake.InjectDeliveryFault(lineartest.DeliveryFault{Mode: lineartest.DeliveryDelay, Count: 1, Delay: 2 * time.Second})
	require.NoError(t, alice.SetPriority(issueID, 1))
	time.Sleep(50 * time.Millisecond)
	st, out := h.do(http.MethodPatch, "/questions/"+id, map[string]any{"priority": 2})
	require.Equal(t, http.StatusOK, st, out)
	time.Sleep(2500 * time.Millisecond)
	q := h.quiesce(id)
	require.Equal(t, float64(2), q["priority"])
	require.Equal(t, float64(2), h.issue(issueID)["priority"])

	// The app first, then Linear later: Linear wins everywhere.
	st, _ = h.do(http.MethodPatch, "/questions/"+id, map[string]any{"title": "from the app"})
	require.Equal(t, http.StatusOK, st)
	require.NoError(t, alice.SetTitle(issueID, "from Linear"))
	h.quiesce(id)
	h.waitQuestion(id, "Linear title", func(q map[string]any) bool { return q["title"] == "from Linear" })
	q = h.quiesce(id)
	require.Equal(t, "from Linear", h.issue(issueID)["title"])
	require.Equal(t, "synced", q["sync"].(map[string]any)["state"])
	writes := h.writes()
	require.LessOrEqual(t, writes["IssueUpdate"], 3, "no ping-pong: %v", writes)
}

// TestQuestionsRetryAfterLinearCall fails the activity once right after Linear created the issue (and the comment),
// before linsync stored it: the retry finds the id taken and reads it back; no second issue or comment.
func TestQuestionsRetryAfterLinearCall(t *testing.T) {
	t.Parallel()
	var failed atomic.Int32
	fail := func(_ context.Context, op string) error {
		if (op == "IssueCreate" && failed.CompareAndSwap(0, 1)) || (op == "CommentCreate" && failed.CompareAndSwap(1, 2)) {
			return errors.New("worker lost after " + op)
		}
		return nil
	}
	h := newQuestionHarness(t, fail)
	id := h.createQuestion(map[string]any{"title": "Retry", "asker_email": "carol@example.com"})
	st, _ := h.do(http.MethodPost, "/questions/"+id+"/replies", map[string]any{"body": "r", "author_email": "dave@example.com"})
	require.Equal(t, http.StatusCreated, st)
	h.waitQuestion(id, "reply synced", func(map[string]any) bool { return failed.Load() == 2 })
	q := h.quiesce(id)
	require.Equal(t, "synced", q["sync"].(map[string]any)["state"])
	require.Equal(t, 2, h.fake.CountRequests("IssueCreate"), "the retry sent the same id again")
	require.Equal(t, 1, h.fake.CountRequests("Issue"), "and read the existing issue back")
	resp, err := http.Get(h.fake.BaseURL() + "/_fake/state")
	require.NoError(t, err)
	defer resp.Body.Close()
	var state struct {
		Issues   []any `json:"issues"`
		Comments []any `json:"comments"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&state))
	require.Len(t, state.Issues, 1, "no duplicate issue")
	require.Len(t, state.Comments, 1, "no duplicate comment")
}

// TestQuestionsUnknownEmail leaves the issue unassigned, says why on the question and on the issue.
func TestQuestionsUnknownEmail(t *testing.T) {
	t.Parallel()
	h := newQuestionHarness(t, nil)
	id := h.createQuestion(map[string]any{"title": "Unknown", "asker_email": "carol@example.com",
		"assignee_email": "nobody@example.com"})
	q := h.quiesce(id)
	require.Contains(t, q["sync"].(map[string]any)["warning"], "nobody@example.com")
	require.Equal(t, "nobody@example.com", q["assignee_email"], "the app's value is kept")
	require.Nil(t, h.issue(issueOf(q))["assigneeId"])
	require.Equal(t, 1, h.fake.CountRequests("CommentCreate"), "a short comment on the issue says so")
	kinds := []string{}
	for _, e := range h.audit(id) {
		kinds = append(kinds, e.(map[string]any)["kind"].(string))
	}
	require.Contains(t, kinds, linsync.AuditUnmatchedEmail)
	_, out := h.do(http.MethodGet, "/questions/"+id+"/replies", nil)
	require.Empty(t, out["replies"], "linsync's note is not a reply")

	// A matching email later assigns and clears the warning.
	st, _ := h.do(http.MethodPatch, "/questions/"+id, map[string]any{"assignee_email": h.sd.Bob.Email})
	require.Equal(t, http.StatusOK, st)
	q = h.waitQuestion(id, "assigned", func(q map[string]any) bool { return q["sync"].(map[string]any)["warning"] == nil })
	require.Equal(t, h.sd.Bob.ID, h.issue(issueOf(q))["assigneeId"])
}
