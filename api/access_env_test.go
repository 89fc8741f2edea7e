package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/worker"
)

// accessEnv is the real API (with a public URL, so it registers webhooks) in front of real Postgres and Temporal,
// with the fake Linear at the network edge, its OAuth authorization server enabled, and every log line captured.
type accessEnv struct {
	t       *testing.T
	db      *postgres.DB
	tc      client.Client
	srv     *httptest.Server
	fake    *lineartest.Server
	sd      lineartest.Seeded
	oauth   *linear.OAuthClient
	client  *http.Client // validates /v1 traffic against the OpenAPI document
	wire    *openAPITransport
	logs    *syncBuffer
	clients *activities.LinearClients
}

type accessOptions struct {
	noPublicURL bool
	grace       time.Duration
	worker      bool
	oauthApp    lineartest.OAuthApp
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

const oauthClientID = "linsync-test-client"

func newAccessEnv(t *testing.T, o accessOptions) *accessEnv {
	t.Helper()
	e := &accessEnv{t: t, db: linsynctest.DB(t), logs: &syncBuffer{}}
	e.tc, _ = linsynctest.Temporal(t)
	e.fake = lineartest.Start(t, lineartest.Options{SchemaPath: linsynctest.LinearSchemaPath(t)})
	e.sd = e.fake.Seed()
	var handler http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)

	app := o.oauthApp
	app.ClientID, app.ClientSecret = oauthClientID, "linsync-test-secret"
	app.RedirectURIs = []string{e.srv.URL + "/v1/oauth/linear/callback"}
	e.fake.EnableOAuth(app)
	var err error
	e.oauth, err = linear.NewOAuthClient(linear.OAuthConfig{ClientID: app.ClientID, ClientSecret: app.ClientSecret,
		RedirectURL: app.RedirectURIs[0], Scopes: []string{"read", "write", "admin"}, Actor: "app",
		AuthorizeURL: e.fake.BaseURL() + "/oauth/authorize", TokenURL: e.fake.BaseURL() + "/oauth/token",
		RevokeURL: e.fake.BaseURL() + "/oauth/revoke"})
	require.NoError(t, err)

	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := api.Config{TaskQueue: "test-" + uuid.NewString(), LinearEndpoint: e.fake.URL(), OAuth: e.oauth,
		WebhookSecretGrace: o.grace, SecretCacheTTL: time.Millisecond, PublicURL: e.srv.URL}
	if o.noPublicURL {
		cfg.PublicURL = ""
	}
	e.clients = &activities.LinearClients{DB: e.db, Endpoint: e.fake.URL(), OAuth: e.oauth}
	if o.worker {
		w := worker.New(e.tc, cfg.TaskQueue, worker.Activities{
			Deliveries: &activities.Deliveries{DB: e.db},
			Access:     &activities.Access{DB: e.db, Linear: e.clients},
		}, sdkworker.Options{})
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}
	reg := prometheus.NewRegistry()
	s, err := api.New(cfg, e.db, e.tc, log, reg, reg)
	require.NoError(t, err)
	handler = s.Handler()
	e.client, e.wire = newOpenAPIClient(t)
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
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
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
