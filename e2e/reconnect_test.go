package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
)

// TestDeadKeyPausesWorkUntilReconnect is a personal API key whose owner left: Linear starts refusing it. The first
// refusal turns the connection needs_reconnect (with the reason and the time), every workflow that needs Linear
// waits instead of failing (no dead letter, and no second request with the dead key), the integration status and the
// sync-status view say so, and connecting again with a good key drains the queue.
func TestDeadKeyPausesWorkUntilReconnect(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{linear: lineartest.Options{Now: tickingClock()}, worker: everyCapability,
		workspace: "offboard", webhook: webhookStored, connect: &stackConnection{},
		tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin}}}, deliver: true})
	admin := "Bearer " + s.tokens["admin"]
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		resp, raw := s.request(s.client, method, "/v1/workspaces/"+s.ws+path, body, "Authorization", admin,
			"Content-Type", "application/json")
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		return resp.StatusCode, out
	}

	s.fake.RevokeKey(s.apiKey) // the key's owner was offboarded in Linear
	var questions []string
	for _, ext := range []string{"q-1", "q-2"} {
		st, out := call(http.MethodPost, "/questions", map[string]any{"title": "Question " + ext, "body": "?",
			"asker_email": "alice@example.com", "external_id": ext})
		require.Equal(t, http.StatusCreated, st, out)
		questions = append(questions, out["question"].(map[string]any)["id"].(string))
	}
	st, out := call(http.MethodPost, "/events", map[string]any{"id": "takeover-1", "event": "domain.takeover_detected",
		"domain": "promo.example.com", "detail": "CNAME points at an unclaimed bucket"})
	require.Equal(t, http.StatusAccepted, st, out)

	// Three workflows wait: two questions and the event's filing.
	var status map[string]any
	require.Eventually(t, func() bool {
		_, status = call(http.MethodGet, "/sync-status", nil)
		conn := status["connection"].(map[string]any)
		return conn["status"] == linsync.ConnectionNeedsReconnect && len(conn["paused_work"].([]any)) == 3
	}, 30*time.Second, 100*time.Millisecond, "sync status: %v", status)
	conn := status["connection"].(map[string]any)
	require.Contains(t, conn["status_reason"], "connect again")
	require.NotEmpty(t, conn["status_changed_at"])
	_, integ := call(http.MethodGet, "/integrations/linear", nil)
	require.Equal(t, linsync.ConnectionNeedsReconnect, integ["connection"].(map[string]any)["status"])
	require.Len(t, integ["paused_work"], 3)
	for _, it := range status["items"].([]any) {
		item := it.(map[string]any)
		if item["kind"] == "question" {
			require.Equal(t, linsync.NextActionReconnect, item["next_action"], "a question says what would help: %v", item)
		}
	}
	_, failed := call(http.MethodGet, "/failed-events", nil)
	require.Empty(t, failed["failed_events"], "waiting work is no dead letter")
	refused := 0
	for _, r := range s.fake.Requests() {
		if r.Auth == "" {
			refused++
		}
	}
	require.LessOrEqual(t, refused, 3, "after the first refusal nobody asks Linear with the dead key again (at most one per workflow in flight)")

	// An admin connects again with a service user's key; the waiting work resumes at once.
	newKey := "lin_api_service0000000000000000000000000000linsync"
	require.NoError(t, s.fake.AddAPIKey(s.sd.Bot.Email, newKey))
	st, out = call(http.MethodPost, "/integrations/linear/connect", map[string]any{"api_key": newKey,
		"default_team_id": s.sd.Triage.Key, "default_priority": 3})
	require.Equal(t, http.StatusOK, st, out)
	require.EqualValues(t, 3, out["resumed_workflows"])
	for _, id := range questions {
		require.Eventually(t, func() bool {
			_, q := call(http.MethodGet, "/questions/"+id, nil)
			return q["question"].(map[string]any)["linear"] != nil
		}, 30*time.Second, 100*time.Millisecond, "question %s reaches Linear after the reconnect", id)
	}
	require.Eventually(t, func() bool {
		_, filed := call(http.MethodGet, "/filed-issues", nil)
		items, _ := filed["filed_issues"].([]any)
		return len(items) == 1 && items[0].(map[string]any)["identifier"] != ""
	}, 30*time.Second, 100*time.Millisecond, "the event is filed after the reconnect")
	require.Eventually(t, func() bool {
		_, status = call(http.MethodGet, "/sync-status", nil)
		return len(status["connection"].(map[string]any)["paused_work"].([]any)) == 0
	}, 30*time.Second, 100*time.Millisecond, "nothing waits any more: %v", status)
	require.Equal(t, linsync.ConnectionActive, status["connection"].(map[string]any)["status"])
	_, failed = call(http.MethodGet, "/failed-events", nil)
	require.Empty(t, failed["failed_events"])
	// A create may be sent twice when its answer is late (a loaded machine): the client-chosen id makes the second a
	// no-op at Linear, so what counts is the issues Linear holds, each made with the new key.
	created := map[string]bool{}
	for _, r := range s.fake.Requests() {
		if r.OperationName == "IssueCreate" && r.Auth != "" && r.Status == http.StatusOK {
			input, _ := r.Variables["input"].(map[string]any)
			created[fmt.Sprint(input["id"])] = true
		}
	}
	require.Len(t, created, 3, "two questions and one event, each created once, with the new key")
	require.Len(t, (&fHarness{stack: s}).fakeIssues(), 3, "and nothing else in Linear")
}

// TestRevokedGrantPausesUntilOAuthReconnect: the OAuth grant behind a connection is revoked in Linear (its access
// token stops working). The first refusal pauses the workspace's work as for a dead key; authorizing again through
// OAuth resumes it, and the question reaches Linear once.
func TestRevokedGrantPausesUntilOAuthReconnect(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{worker: true, questions: true})
	ws, tok := e.workspace("acme")
	e.connectOAuth(ws, tok)
	_, creds, err := e.db.ConnectionCredentials(t.Context(), ws.ID)
	require.NoError(t, err)
	e.fake.RevokeKey("Bearer " + creds.Credential) // an admin revoked linsync's access in Linear

	st, body := e.call(http.MethodPost, "/v1/workspaces/acme/questions", tok, map[string]any{"title": "Grant gone?",
		"body": "?", "asker_email": "alice@example.com", "external_id": "g-1"})
	require.Equal(t, http.StatusCreated, st, body)
	qid := body["question"].(map[string]any)["id"].(string)
	require.Eventually(t, func() bool {
		_, body = e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear", tok, nil)
		return body["connection"].(map[string]any)["status"] == linsync.ConnectionNeedsReconnect && len(body["paused_work"].([]any)) == 1
	}, 30*time.Second, 100*time.Millisecond, "the question's workflow waits: %v", body)
	require.Equal(t, "oauth", body["connection"].(map[string]any)["auth_kind"])

	_, body = e.connectOAuth(ws, tok)
	require.EqualValues(t, 1, body["resumed_workflows"])
	require.Eventually(t, func() bool {
		_, body = e.call(http.MethodGet, "/v1/workspaces/acme/questions/"+qid, tok, nil)
		return body["question"].(map[string]any)["linear"] != nil
	}, 30*time.Second, 100*time.Millisecond, "the question reaches Linear after the reconnect")
	_, body = e.call(http.MethodGet, "/v1/workspaces/acme/failed-events", tok, nil)
	require.Empty(t, body["failed_events"])
	require.Equal(t, 1, e.fake.CountRequests("IssueCreate")-refusedCreates(e.fake))
}

// refusedCreates counts the issueCreate requests Linear refused for their credential.
func refusedCreates(fake *lineartest.Server) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.OperationName == "IssueCreate" && r.Auth == "" {
			n++
		}
	}
	return n
}

// TestOffboardedUserPausesBeforeTheKeyFails: Linear reports (a User webhook) that the user the connection acts as
// was deactivated. The connection turns needs_reconnect at once, before any request is refused, with the reason; the
// deactivation of another user changes nothing.
func TestOffboardedUserPausesBeforeTheKeyFails(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{worker: everyCapability, workspace: "offboard", webhook: webhookStored,
		connect: &stackConnection{}})
	raw, err := os.ReadFile(filepath.Join(linsynctest.LinearTestdata(t, "schema-payloads"), "user_update_deactivated.json"))
	require.NoError(t, err)
	post := func(userID string) string {
		t.Helper()
		var body map[string]any
		require.NoError(t, json.Unmarshal(raw, &body))
		body["organizationId"] = s.sd.OrganizationID
		body["webhookTimestamp"] = time.Now().UnixMilli()
		body["data"].(map[string]any)["id"] = userID
		b, err := json.Marshal(body)
		require.NoError(t, err)
		id := uuid.NewString()
		resp, out := s.request(http.DefaultClient, http.MethodPost, "/webhooks/linear/"+s.ws, json.RawMessage(b),
			linear.HeaderDelivery, id, linear.HeaderSignature, linear.Sign([]byte(testSecret), b), "Content-Type", "application/json")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
		return id
	}
	outcome := func(delivery string) string {
		t.Helper()
		var rec *linsync.Delivery
		require.Eventually(t, func() bool {
			var err error
			rec, err = s.db.FindDelivery(t.Context(), s.wsID, delivery)
			return err == nil
		}, 30*time.Second, 50*time.Millisecond)
		return rec.Outcome
	}

	require.Equal(t, linsync.OutcomeIgnored, outcome(post(s.sd.Alice.ID)), "another member left")
	conn, err := s.db.FindConnection(t.Context(), s.wsID)
	require.NoError(t, err)
	require.Equal(t, linsync.ConnectionActive, conn.Status)

	requests := len(s.fake.Requests())
	require.Equal(t, linsync.OutcomeProcessed, outcome(post(s.sd.Bot.ID)), "the connection's own user left")
	conn, err = s.db.FindConnection(t.Context(), s.wsID)
	require.NoError(t, err)
	require.Equal(t, linsync.ConnectionNeedsReconnect, conn.Status)
	require.Contains(t, conn.StatusReason, "was deactivated")
	require.NotNil(t, conn.StatusChangedAt)
	require.Len(t, s.fake.Requests(), requests, "known from the webhook, without asking Linear")
}
