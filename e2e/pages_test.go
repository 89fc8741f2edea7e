package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/workflows"
)

// TestListsAreBoundedAndPaged: every list a tenant can grow answers at most its maximum page, the pages together
// hold every item exactly once, a limit past the maximum is 400, and a cursor this API did not make is 400 (never
// a 500 from a failed cast in the database). Failed events, which carry their input, also end a page early by size.
func TestListsAreBoundedAndPaged(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noLinear: true, workspace: "acme", tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin}}}})
	ctx := t.Context()
	tok := s.tokens["admin"]

	q, _, err := s.db.CreateQuestion(ctx, linsync.QuestionInput{WorkspaceID: s.wsID, Title: "Many replies", AskerEmail: "a@example.com",
		TeamID: "team", At: time.Now()})
	require.NoError(t, err)
	for i := range 130 {
		_, _, err := s.db.CreateToken(ctx, s.wsID, fmt.Sprintf("token-%d", i), []string{linsync.ScopeEventsWrite})
		require.NoError(t, err)
		_, _, err = s.db.AddReply(ctx, linsync.ReplyInput{WorkspaceID: s.wsID, QuestionID: q.ID, Body: fmt.Sprintf("reply %d", i),
			AuthorEmail: "b@example.com"})
		require.NoError(t, err)
		require.NoError(t, s.db.AddAudit(ctx, q.ID, linsync.AuditEntry{Kind: "conflict", Field: "title", Detail: map[string]any{"n": i}}))
		require.NoError(t, s.db.RecordAccessEvent(ctx, linsync.AccessEvent{WorkspaceID: s.wsID, Kind: linsync.AccessConnected,
			Outcome: linsync.AccessOutcomeOK, Detail: fmt.Sprintf("event %d", i)}))
		target, err := s.db.CreateNotificationTarget(ctx, s.wsID, linsync.NotificationTargetInput{Name: fmt.Sprintf("target-%d", i),
			Kind: linsync.NotifySlack, URL: "https://hooks.slack.com/services/x"})
		require.NoError(t, err)
		_, err = s.db.SaveNotificationRule(ctx, s.wsID, linsync.NotificationRule{Name: fmt.Sprintf("rule-%d", i), Enabled: true,
			Match: linsync.NotificationMatch{Types: []string{"Issue"}}, TargetIDs: []string{target.ID}})
		require.NoError(t, err)
	}
	get := func(hc *http.Client, path string) (int, map[string]any) {
		t.Helper()
		resp, raw := s.request(hc, http.MethodGet, "/v1/workspaces/acme"+path, nil, "Authorization", "Bearer "+tok)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		return resp.StatusCode, out
	}
	for _, l := range []struct {
		path, key string
		total     int
	}{
		{"/tokens", "tokens", 131}, // and the admin token
		{"/integrations/linear/history", "events", 130},
		{"/questions/" + q.ID + "/replies", "replies", 130},
		{"/questions/" + q.ID + "/audit", "audit", 130},
		{"/notification-targets", "targets", 130},
		{"/notification-rules", "rules", 130},
	} {
		seen := map[string]bool{}
		next, pages := "", 0
		for {
			path := l.path + "?limit=100"
			if next != "" {
				path += "&cursor=" + next
			}
			status, body := get(s.client, path)
			require.Equal(t, http.StatusOK, status, "%s: %v", path, body)
			items := body[l.key].([]any)
			require.LessOrEqual(t, len(items), 100, "%s holds more than its maximum", l.path)
			for _, it := range items {
				id := fmt.Sprint(it.(map[string]any)["id"])
				require.False(t, seen[id], "%s: %s on two pages", l.path, id)
				seen[id] = true
			}
			pages++
			if body["next_cursor"] == nil {
				break
			}
			next = body["next_cursor"].(string)
		}
		require.Len(t, seen, l.total, l.path)
		require.Equal(t, 2, pages, l.path)

		_, body := get(s.client, l.path)
		require.LessOrEqual(t, len(body[l.key].([]any)), 100, "%s without a limit", l.path)
		status, body := get(http.DefaultClient, l.path+"?limit=101")
		require.Equal(t, http.StatusBadRequest, status, "%s: %v", l.path, body)
		for _, cursor := range []string{"not-a-cursor", b64("2026-01-01T00:00:00Z|not-a-uuid"), b64("s|-1"), b64("s|x")} {
			status, body := get(http.DefaultClient, l.path+"?cursor="+cursor)
			require.Equal(t, http.StatusBadRequest, status, "%s cursor %q: %v", l.path, cursor, body)
			require.Equal(t, "cursor", body["error"].(map[string]any)["field"])
		}
	}
	for _, path := range []string{"/filed-issues?cursor=" + b64(`{"c":"2026-01-01T00:00:00Z","i":"not-a-uuid"}`),
		"/questions?cursor=" + b64("2026-01-01T00:00:00Z|not-a-uuid"), "/failed-events?cursor=not-a-uuid"} {
		status, body := get(http.DefaultClient, path)
		require.Equal(t, http.StatusBadRequest, status, "%s: %v", path, body)
	}

	// Six failed events of 1 MiB of input each: a page stops before 4 MiB, and the cursor carries on.
	big := json.RawMessage(`["` + strings.Repeat("x", 1<<20) + `"]`)
	for i := range 6 {
		_, err := s.db.RecordDeadLetter(ctx, linsync.DeadLetter{WorkspaceID: s.wsID, Kind: workflows.TypeLinearDelivery,
			WorkflowID: fmt.Sprintf("big-%d", i), RunID: "r", TaskQueue: s.taskQueue, Input: big, ErrorClass: "x", Attempts: 1})
		require.NoError(t, err)
	}
	total, next := 0, ""
	for range 6 {
		resp, raw := s.request(s.client, http.MethodGet, "/v1/workspaces/acme/failed-events?cursor="+next, nil, "Authorization", "Bearer "+tok)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Less(t, len(raw), 5<<20, "one response stays within a few MiB")
		var out struct {
			FailedEvents []any  `json:"failed_events"`
			NextCursor   string `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(raw, &out))
		total += len(out.FailedEvents)
		if next = out.NextCursor; next == "" {
			break
		}
	}
	require.Equal(t, 6, total, "every failed event is on some page")
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestTextFieldsAreCapped: a tenant cannot store (and so read back) unbounded text.
func TestTextFieldsAreCapped(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noLinear: true, workspace: "acme", connect: &stackConnection{apiKey: "lin_api_x"},
		tokens: []stackToken{{"admin", []string{linsync.ScopeAdmin, linsync.ScopeQuestionsWrite}}}})
	q, _, err := s.db.CreateQuestion(t.Context(), linsync.QuestionInput{WorkspaceID: s.wsID, Title: "T", AskerEmail: "a@example.com",
		TeamID: "team", At: time.Now()})
	require.NoError(t, err)
	long := strings.Repeat("y", 64<<10+1)
	for _, c := range []struct {
		method, path, field string
		body                map[string]any
	}{
		{http.MethodPost, "/questions", "body", map[string]any{"title": "t", "body": long, "asker_email": "a@example.com"}},
		{http.MethodPost, "/questions", "external_id", map[string]any{"title": "t", "asker_email": "a@example.com", "external_id": long[:256]}},
		{http.MethodPost, "/questions", "asker_email", map[string]any{"title": "t", "asker_email": long[:320] + "@example.com"}},
		{http.MethodPatch, "/questions/" + q.ID, "body", map[string]any{"body": long}},
		{http.MethodPost, "/questions/" + q.ID + "/replies", "body", map[string]any{"body": long, "author_email": "b@example.com"}},
		{http.MethodPost, "/tokens", "name", map[string]any{"name": long[:201]}},
		{http.MethodPut, "/question-settings", "callback_url", map[string]any{"callback_url": "https://x.example/" + long[:2048]}},
	} {
		resp, raw := s.request(http.DefaultClient, c.method, "/v1/workspaces/acme"+c.path, c.body,
			"Authorization", "Bearer "+s.tokens["admin"], "Content-Type", "application/json")
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "%s %s: %s", c.method, c.path, raw)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out))
		require.Equal(t, c.field, out["error"].(map[string]any)["field"], "%s %s", c.method, c.path)
	}
}
