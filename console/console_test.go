package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// plainSealer stands in for the envelope keeper: it "seals" by prefixing a marker, which is enough to test the
// console's handling of the cookie, not its cryptography (the keeper's own tests cover that).
type plainSealer struct{}

func (plainSealer) Encrypt(_ context.Context, p []byte) ([]byte, error) {
	return append([]byte("sealed:"), p...), nil
}
func (plainSealer) Decrypt(_ context.Context, c []byte) ([]byte, error) {
	if !strings.HasPrefix(string(c), "sealed:") {
		return nil, errors.New("not sealed here")
	}
	return c[len("sealed:"):], nil
}

// fakeAPI answers the console's calls with canned bodies by path, and records them.
type fakeAPI struct {
	answers map[string]string
	calls   []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer tok" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"a valid API token is required"}}`))
		return
	}
	for p, body := range f.answers {
		if strings.HasSuffix(r.URL.Path, p) {
			_, _ = w.Write([]byte(body))
			return
		}
	}
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no route for ` + r.URL.Path + `"}}`))
}

func newTestConsole(t *testing.T, api http.Handler) *Console {
	t.Helper()
	c, err := New(Options{API: api, Sealer: plainSealer{}})
	require.NoError(t, err)
	return c
}

func sessionCookieFor(t *testing.T, c *Console, s session) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	require.NoError(t, c.writeSession(context.Background(), rec, httptest.NewRequest(http.MethodGet, "/", nil), &s))
	return rec.Result().Cookies()[0]
}

func TestEveryPageRenders(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{answers: map[string]string{
		"/routing-rules":                `{"rules":[{"name":"paid","tag_glob":"paid*","team_id":"t1","labels":["x"],"priority":1},{"default":true}],"version":2}`,
		"/integrations/linear/teams":    `{"teams":[{"id":"t1","key":"ENG","name":"Engineering"}]}`,
		"/integrations/linear":          `{"connection":{"organization_name":"Org","status":"needs_reconnect","status_reason":"Linear refused the key","auth_kind":"api_key","api_key_last4":"…abcd","default_labels":["a"]},"paused_work":[]}`,
		"/integrations/linear/webhooks": `{"webhooks":[{"scope":"all_public_teams","health":"ok"}]}`,
		"/failed-events":                `{"failed_events":[{"id":"d1","kind":"FileEvent","error_class":"LinearForbidden","attempts":1,"status":"open","temporal_ui_url":"http://ui/x","first_failed_at":"2026-01-01T00:00:00Z"}],"next_cursor":""}`,
		"/sync-status":                  `{"items":[],"inbox":{}}`,
		"/questions":                    `{"questions":[]}`,
		"/filed-issues":                 `{"filed_issues":[]}`,
		"/gateway/approvals":            `{"approvals":[{"id":"a1","actions":[{"action":"issue.delete"}],"risk":"high","request_hash":"h","expires_at":"2026-01-01T00:00:00Z"}]}`,
		"/gateway/audit":                `{"entries":[{"seq":1,"actions":["read"],"decision":"allowed"}]}`,
		"/notification-targets":         `{"targets":[{"id":"11111111-1111-4111-8111-111111111111","name":"pager","kind":"webhook","url_last4":"hook","created_at":"2026-01-01T00:00:00Z"}],"next_cursor":null}`,
		"/notification-rules":           `{"rules":[{"id":"r1","name":"done","enabled":true,"match":{"types":["Issue"],"state_types":["completed"],"priority_at_least":2},"target_ids":["11111111-1111-4111-8111-111111111111"],"digest_minutes":5}],"next_cursor":null}`,
		"/notification-rules/templates": `{"templates":[{"name":"issue-completed","description":"an issue moved to a completed state","match":{"types":["Issue"]}}]}`,
		"/notification-rules/r1":        `{"rule":{"id":"r1","name":"done","enabled":true,"match":{"types":["Issue"],"labels":["Bug"]},"target_ids":["11111111-1111-4111-8111-111111111111"]}}`,
	}}
	c := newTestConsole(t, api)
	ck := sessionCookieFor(t, c, session{Workspace: "ws", Token: "tok", CSRF: "csrf-token", Expires: time.Now().Add(time.Hour).Unix()})
	for _, path := range []string{"/console/integration", "/console/routing", "/console/routing?edit=0", "/console/failed",
		"/console/sync", "/console/gateway", "/console/notifications", "/console/notifications?edit=r1"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); c.ServeHTTP(rec, req) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not answer", path)
		}
		require.Equal(t, http.StatusOK, rec.Code, "%s: %s", path, rec.Body.String())
		require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'")
		require.NotContains(t, rec.Body.String(), "tok\"", "the token never reaches a page")
		if strings.HasPrefix(path, "/console/notifications") {
			body := rec.Body.String()
			require.NotContains(t, body, `class="error`, "%s: every call the page makes is answered", path)
			require.Contains(t, body, "Issue, moving to a state of type completed, priority High or more urgent", "the rule in words")
			require.Contains(t, body, "…hook", "a target's URL by its last 4")
		}
		require.Contains(t, rec.Body.String(), `href="/console/notifications"`, "the nav always lists notifications")
	}
}

func TestPostWithoutCSRFTokenIsRefusedAndSendsNothing(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{answers: map[string]string{}}
	c := newTestConsole(t, api)
	ck := sessionCookieFor(t, c, session{Workspace: "ws", Token: "tok", CSRF: "csrf-token", Expires: time.Now().Add(time.Hour).Unix()})
	for _, body := range []string{"index=0", "index=0&csrf=wrong"} {
		req := httptest.NewRequest(http.MethodPost, "/console/routing/delete", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		require.Equal(t, http.StatusForbidden, rec.Code)
	}
	require.Empty(t, api.calls, "a refused form reaches no API")
}

func TestSessionCookieRefusedWhenForgedOrExpired(t *testing.T) {
	t.Parallel()
	c := newTestConsole(t, &fakeAPI{})
	expired := sessionCookieFor(t, c, session{Workspace: "ws", Token: "tok", CSRF: "x", Expires: time.Now().Add(-time.Minute).Unix()})
	raw, _ := json.Marshal(session{Workspace: "ws", Token: "tok", CSRF: "x", Expires: time.Now().Add(time.Hour).Unix()})
	forged := &http.Cookie{Name: sessionCookie, Value: url.QueryEscape(string(raw))}
	for _, ck := range []*http.Cookie{expired, forged} {
		req := httptest.NewRequest(http.MethodGet, "/console/routing", nil)
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		require.Equal(t, http.StatusSeeOther, rec.Code)
		require.Equal(t, "/console/signin", rec.Header().Get("Location"))
	}
	live := sessionCookieFor(t, c, session{Workspace: "ws", Token: "tok", CSRF: "x", Expires: time.Now().Add(time.Hour).Unix()})
	require.True(t, live.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, live.SameSite)
	require.Equal(t, "/console", live.Path)
}

// scriptedAPI answers by "METHOD path-suffix" and records each request's body.
type scriptedAPI struct {
	answers map[string]struct {
		status int
		body   string
	}
	bodies map[string]string
}

func (f *scriptedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b []byte
	if r.Body != nil {
		b, _ = io.ReadAll(r.Body)
	}
	for k, a := range f.answers {
		m, suffix, _ := strings.Cut(k, " ")
		if m == r.Method && strings.HasSuffix(r.URL.Path, suffix) {
			f.bodies[k] = string(b)
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{}`))
}

func TestNotificationFormsCallTheAPI(t *testing.T) {
	t.Parallel()
	type answer = struct {
		status int
		body   string
	}
	api := &scriptedAPI{bodies: map[string]string{}, answers: map[string]answer{
		"POST /notification-targets":         {http.StatusCreated, `{"target":{"id":"t1","name":"pager","kind":"webhook","url_last4":"hook"},"secret":"whsec_c2VjcmV0"}`},
		"POST /notification-rules":           {http.StatusUnprocessableEntity, `{"error":{"code":"unprocessable","field":"match.state_types[0]","message":"must be one of triage, backlog"}}`},
		"GET /notification-targets":          {http.StatusOK, `{"targets":[{"id":"t1","name":"pager","kind":"webhook","url_last4":"hook"}]}`},
		"GET /notification-rules/r1":         {http.StatusOK, `{"rule":{"id":"r1","name":"done","enabled":true,"match":{"types":["Issue"]},"target_ids":["t1"],"digest_minutes":5}}`},
		"PUT /notification-rules/r1":         {http.StatusOK, `{"rule":{}}`},
		"POST /notification-targets/t1:test": {http.StatusOK, `{"target_id":"t1","http_status":500,"status":"failed","error":"HTTP 500"}`},
	}}
	c := newTestConsole(t, api)
	ck := sessionCookieFor(t, c, session{Workspace: "ws", Token: "tok", CSRF: "csrf-token", Expires: time.Now().Add(time.Hour).Unix()})
	post := func(path, form string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form+"&csrf=csrf-token"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("HX-Boosted", "true")
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec
	}

	rec := post("/console/notifications/targets", "name=pager&kind=webhook&url=https%3A%2F%2Fexample.com%2Fhook")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"name":"pager","kind":"webhook","url":"https://example.com/hook"}`, api.bodies["POST /notification-targets"])
	require.Contains(t, rec.Body.String(), `id="new-secret"`)
	require.Contains(t, rec.Body.String(), "whsec_c2VjcmV0", "the signing secret is shown in the answer that created it")
	require.Equal(t, "/console/notifications", rec.Header().Get("HX-Push-Url"), "and not at an address a reload would post again")

	rec = post("/console/notifications/rules", "name=x&types=Issue&state_types=nope&target_ids=t1&digest_minutes=0")
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
	require.Contains(t, rec.Body.String(), "<strong>match.state_types[0]</strong>: must be one of triage, backlog")
	require.Contains(t, rec.Body.String(), `name="state_types" multiple size="4" aria-invalid="true" aria-describedby="rule-error"`)
	require.Contains(t, rec.Body.String(), `value="x"`, "the form keeps what was typed")

	rec = post("/console/notifications/rules", "name=x&types=Issue&digest_minutes=soon")
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
	require.Contains(t, rec.Body.String(), "<strong>digest_minutes</strong>")

	rec = post("/console/notifications/rules/r1/toggle", "enabled=false")
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"name":"done","enabled":false,"match":{"types":["Issue"]},"target_ids":["t1"],"template":"","digest_minutes":5,"notify_on_own_changes":false}`,
		api.bodies["PUT /notification-rules/r1"], "only enabled changes")

	rec = post("/console/notifications/targets/t1/test", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Regexp(t, `id="test-result-t1"[^>]*>\s*<span class="badge bad">failed</span>\s*HTTP 500 · HTTP 500`, rec.Body.String())
}
