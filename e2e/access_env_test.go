package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// accessEnv is the real API (with a public URL, so it registers webhooks) in front of real Postgres and Temporal,
// with the fake Linear at the network edge, its OAuth authorization server enabled, and every log line captured.
// Tests make their own workspaces.
type accessEnv struct {
	*stack
	oauth *linear.OAuthClient
}

type accessOptions struct {
	noPublicURL bool
	grace       time.Duration
	worker      bool
	// questions adds the question activities to the worker (with worker).
	questions bool
	oauthApp  lineartest.OAuthApp
	// appSecret is LINEAR_OAUTH_WEBHOOK_SECRET, the OAuth application's own webhook secret.
	appSecret string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	oauthClientID    = "linsync-test-client"
	accessCodecToken = "lsc_access-env-codec-token-8d2e"
)

func newAccessEnv(t *testing.T, o accessOptions) *accessEnv {
	t.Helper()
	e := &accessEnv{}
	so := stackOptions{captureLogs: true, prepare: func(s *stack, cfg *api.Config) {
		app := o.oauthApp
		app.ClientID, app.ClientSecret = oauthClientID, "linsync-test-secret"
		app.RedirectURIs = []string{s.srv.URL + "/v1/oauth/linear/callback"}
		s.fake.EnableOAuth(app)
		var err error
		e.oauth, err = linear.NewOAuthClient(linear.OAuthConfig{ClientID: app.ClientID, ClientSecret: app.ClientSecret,
			RedirectURL: app.RedirectURIs[0], Scopes: []string{"read", "write", "admin"}, Actor: "app",
			AuthorizeURL: s.fake.BaseURL() + "/oauth/authorize", TokenURL: s.fake.BaseURL() + "/oauth/token",
			RevokeURL: s.fake.BaseURL() + "/oauth/revoke"})
		require.NoError(t, err)
		s.clients.OAuth = e.oauth
		cfg.OAuth, cfg.WebhookSecretGrace, cfg.SecretCacheTTL, cfg.PublicURL = e.oauth, o.grace, time.Millisecond, s.srv.URL
		cfg.CodecToken = accessCodecToken
		if o.noPublicURL {
			cfg.PublicURL = ""
		}
		cfg.OAuthWebhookSecret = o.appSecret
	}}
	if o.worker {
		so.worker = stackWorker{deliveries: true, access: true, questions: o.questions}
	}
	e.stack = newStack(t, so)
	return e
}

// workspace creates a workspace and an admin token for it.
func (e *accessEnv) workspace(slug string) (*linsync.Workspace, string) {
	e.t.Helper()
	ws, err := e.db.CreateWorkspace(e.t.Context(), slug, slug)
	require.NoError(e.t, err)
	_, secret, err := e.db.CreateToken(e.t.Context(), ws.ID, "admin", []string{linsync.ScopeAdmin})
	require.NoError(e.t, err)
	return ws, secret
}

// call sends a request through the OpenAPI-validating client and decodes the JSON answer.
func (e *accessEnv) call(method, path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	return e.do(e.client, method, path, token, body)
}

func (e *accessEnv) do(hc *http.Client, method, path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	var header []string
	if body != nil {
		header = append(header, "Content-Type", "application/json")
	}
	if token != "" {
		header = append(header, "Authorization", "Bearer "+token)
	}
	resp, raw := e.request(hc, method, path, body, header...)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		out["_location"] = loc
	}
	return resp.StatusCode, out
}

// connectAPIKey connects ws with the seeded API key and the ENG team.
func (e *accessEnv) connectAPIKey(ws *linsync.Workspace, token string) map[string]any {
	e.t.Helper()
	status, body := e.call(http.MethodPost, "/v1/workspaces/"+ws.Slug+"/integrations/linear/connect", token,
		map[string]any{"api_key": e.sd.APIKey, "default_team_id": e.sd.Plain.ID, "default_priority": 3, "labels": []string{"linsync"}})
	require.Equal(e.t, http.StatusOK, status, "body: %v", body)
	return body
}

// connectOAuth runs the whole authorization: start, Linear's consent (the fake consents at once), callback.
func (e *accessEnv) connectOAuth(ws *linsync.Workspace, token string) (callbackURL string, body map[string]any) {
	e.t.Helper()
	callbackURL = e.authorize(ws, token)
	status, body := e.call(http.MethodGet, callbackURL[len(e.srv.URL):], "", nil)
	require.Equal(e.t, http.StatusOK, status, "body: %v", body)
	return callbackURL, body
}

// authorize starts an authorization and follows Linear's redirect back, returning the callback URL (with code and
// state) without calling it.
func (e *accessEnv) authorize(ws *linsync.Workspace, token string) string {
	e.t.Helper()
	status, body := e.call(http.MethodPost, "/v1/workspaces/"+ws.Slug+"/integrations/linear/oauth/start", token,
		map[string]any{"default_team_id": e.sd.Plain.Key})
	require.Equal(e.t, http.StatusOK, status, "body: %v", body)
	authURL := body["authorize_url"].(string)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	require.NoError(e.t, err)
	resp.Body.Close()
	require.Equal(e.t, http.StatusFound, resp.StatusCode, "the fake consents and redirects back")
	return resp.Header.Get("Location")
}

// postSigned posts a webhook body to linsync's ingress as Linear would, signed with secret.
func (e *accessEnv) postSigned(path string, body []byte, secret string) int {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(linear.HeaderDelivery, uuid.NewString())
	req.Header.Set(linear.HeaderSignature, linear.Sign([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func (e *accessEnv) connection(wsID string) *linsync.LinearConnection {
	e.t.Helper()
	c, err := e.db.FindConnection(e.t.Context(), wsID)
	require.NoError(e.t, err)
	return c
}
