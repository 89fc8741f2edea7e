package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// accessSnapshot is what a workspace owns, to prove a request changed nothing.
type accessSnapshot struct {
	tokens, webhooks, events, states int
	conn                             linsync.LinearConnection
	linearHooks                      int
	// The agent gateway's: live agent keys, held requests by status, audit entries.
	agentKeys, audit int
	approvals        string
}

func (e *accessEnv) snapshot(wsID string) accessSnapshot {
	e.t.Helper()
	ctx := e.t.Context()
	var s accessSnapshot
	toks, err := e.db.ListTokens(ctx, wsID)
	require.NoError(e.t, err)
	for _, t := range toks {
		if t.RevokedAt == nil {
			s.tokens++
		}
	}
	hooks, err := e.db.ListLinearWebhooks(ctx, wsID)
	require.NoError(e.t, err)
	s.webhooks = len(hooks)
	evs, err := e.db.ListAccessEvents(ctx, wsID, 1000)
	require.NoError(e.t, err)
	s.events = len(evs)
	require.NoError(e.t, e.db.Pool().QueryRow(ctx, `SELECT count(*) FROM oauth_states WHERE workspace_id = $1`, wsID).Scan(&s.states))
	if c, err := e.db.FindConnection(ctx, wsID); err == nil {
		s.conn = *c
	}
	s.linearHooks = len(e.fake.Webhooks())
	require.NoError(e.t, e.db.Pool().QueryRow(ctx, `SELECT
		(SELECT count(*) FROM agent_keys WHERE workspace_id = $1 AND revoked_at IS NULL),
		(SELECT count(*) FROM gateway_audit WHERE workspace_id = $1),
		(SELECT coalesce(string_agg(status || ':' || jsonb_array_length(approvers), ',' ORDER BY id), '') FROM gateway_approvals WHERE workspace_id = $1)`,
		wsID).Scan(&s.agentKeys, &s.audit, &s.approvals))
	return s
}

// TestTokenIsolationEveryV1Route walks every /v1 route the server has (every capability's): workspace B's admin
// token on workspace A's paths is answered 404, no token 401, and workspace A is unchanged afterwards. Routes
// outside a workspace keep their own guard: the bootstrap token, or the OAuth state.
func TestTokenIsolationEveryV1Route(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	a, aTok := e.workspace("alpha")
	b, bTok := e.workspace("bravo")
	hook := e.connectAPIKey(a, aTok)["webhook"].(map[string]any)
	toks, err := e.db.ListTokens(t.Context(), a.ID)
	require.NoError(t, err)
	// The agent gateway's resources of A: an agent key and a request it holds for approval. B has a key too.
	aKey, aSecret, err := e.db.CreateAgentKey(t.Context(), a.ID, "alpha-bot", linsync.AgentPolicy{})
	require.NoError(t, err)
	_, bAgent, err := e.db.CreateAgentKey(t.Context(), b.ID, "bravo-bot", linsync.AgentPolicy{})
	require.NoError(t, err)
	resp, raw := e.request(&http.Client{}, http.MethodPost, "/v1/workspaces/alpha/proxy/linear/graphql",
		map[string]any{"query": `mutation { issueDelete(id: "ENG-1") { success } }`},
		"Authorization", "Bearer "+aSecret, "X-Agent-Id", "alpha-agent")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", raw)
	var held map[string]any
	require.NoError(t, json.Unmarshal(raw, &held))
	ids := map[string]string{"tokens": toks[0].ID, "webhooks": hook["id"].(string), "agent-keys": aKey.ID,
		"approvals": held["approval_id"].(string)}
	beforeA, beforeB := e.snapshot(a.ID), e.snapshot(b.ID)

	srvRoutes := e.server.Routes()
	walked := 0
	for _, r := range srvRoutes {
		if !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		path := concretePath(r.Path, "alpha", ids)
		var body []byte
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			body = []byte(`{}`)
		}
		noToken := rawStatus(t, e.srv.URL, r.Method, path, "", body)
		otherWS := rawStatus(t, e.srv.URL, r.Method, path, bTok, body)
		if strings.Contains(r.Path, "/proxy/") {
			// The agents' routes: B's agent key is another workspace's too.
			require.Equal(t, http.StatusNotFound, rawStatus(t, e.srv.URL, r.Method, path, bAgent, body),
				"%s %s with another workspace's agent key", r.Method, r.Path)
		}
		switch {
		case strings.Contains(r.Path, ":ws"):
			walked++
			require.Equal(t, http.StatusUnauthorized, noToken, "%s %s without a token", r.Method, r.Path)
			require.Equal(t, http.StatusNotFound, otherWS, "%s %s with another workspace's admin token", r.Method, r.Path)
		case r.Path == "/v1/workspaces":
			require.Equal(t, http.StatusUnauthorized, noToken, "%s %s without the bootstrap token", r.Method, r.Path)
			require.Equal(t, http.StatusUnauthorized, otherWS, "a workspace token is not the bootstrap token")
		case r.Path == "/v1/oauth/linear/callback":
			require.Equal(t, http.StatusBadRequest, noToken, "the state, not a token, authenticates the callback")
		default:
			require.GreaterOrEqual(t, noToken, 400, "%s %s is unguarded without a token", r.Method, r.Path)
		}
	}
	require.Greater(t, walked, 10)
	require.Equal(t, beforeA, e.snapshot(a.ID), "workspace A unchanged")
	require.Equal(t, beforeB, e.snapshot(b.ID), "workspace B unchanged")
}

// concretePath fills a gin route with workspace ws and ids of workspace A's own resources where the route names
// them, so a leak would hit something real.
func concretePath(route, ws string, ids map[string]string) string {
	parts := strings.Split(strings.ReplaceAll(route, `\:`, "\x00"), "/")
	for i, p := range parts {
		if !strings.HasPrefix(p, ":") && !strings.HasPrefix(p, "*") {
			continue
		}
		switch {
		case p == ":ws":
			parts[i] = ws
		case i > 0 && ids[parts[i-1]] != "":
			parts[i] = ids[parts[i-1]]
		default:
			parts[i] = uuid.NewString()
		}
	}
	return strings.ReplaceAll(strings.Join(parts, "/"), "\x00", ":")
}

func rawStatus(t *testing.T, base, method, path, token string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSecretsNeverInLogsOrResponses captures every log line of a full API-key connect with webhook registration, a
// manual webhook, rotations of both (the managed one also with Linear's answer lost, then retried), an OAuth callback refused in another browser, an OAuth connect (with its own
// webhook) and a disconnect, codec requests with a wrong and the right token, and every response body, then searches
// them for each secret involved: the API key, the OAuth tokens, the OAuth browser binding, the webhook secrets, the
// workspace tokens, the codec token, the OAuth code.
func TestSecretsNeverInLogsOrResponses(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	secrets := map[string]string{"linear api key": e.sd.APIKey}
	a, aTok := e.workspace("alpha")
	b, bTok := e.workspace("bravo")
	secrets["alpha admin token"], secrets["bravo admin token"] = aTok, bTok

	managed := e.connectAPIKey(a, aTok)["webhook"].(map[string]any)["id"].(string)
	secrets["managed webhook secret"] = e.fake.Webhooks()[0].Secret
	status, body := e.call(http.MethodPost, "/v1/workspaces/alpha/integrations/linear/webhooks", aTok,
		map[string]any{"secret": "lin_wh_manual_pasted_secret_abcdef", "team_id": e.sd.Plain.ID})
	require.Equal(t, http.StatusCreated, status, "body: %v", body)
	manual := body["webhook"].(map[string]any)["id"].(string)
	secrets["manual webhook secret"] = "lin_wh_manual_pasted_secret_abcdef"
	status, _ = e.call(http.MethodPost, "/v1/workspaces/alpha/integrations/linear/webhooks/"+managed+"/rotate", aTok, nil)
	require.Equal(t, http.StatusOK, status)
	secrets["managed rotated secret"] = e.fake.Webhooks()[0].Secret
	// A rotation whose answer from Linear is lost leaves a pending secret, which the retry sends again: neither the
	// failure nor the retry logs or answers it.
	e.fake.LoseAnswers("WebhookUpdate", 1)
	status, _ = e.call(http.MethodPost, "/v1/workspaces/alpha/integrations/linear/webhooks/"+managed+"/rotate", aTok, nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	secrets["managed pending secret"] = e.fake.Webhooks()[0].Secret
	status, _ = e.call(http.MethodPost, "/v1/workspaces/alpha/integrations/linear/webhooks/"+managed+"/rotate", aTok, nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, secrets["managed pending secret"], e.fake.Webhooks()[0].Secret)
	status, _ = e.call(http.MethodPost, "/v1/workspaces/alpha/integrations/linear/webhooks/"+manual+"/rotate", aTok,
		map[string]any{"secret": "lin_wh_manual_rotated_secret_ghijkl"})
	require.Equal(t, http.StatusOK, status)
	secrets["manual rotated secret"] = "lin_wh_manual_rotated_secret_ghijkl"
	status, _ = e.call(http.MethodGet, "/v1/workspaces/alpha/integrations/linear/teams", aTok, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = e.call(http.MethodGet, "/v1/workspaces/alpha/integrations/linear", aTok, nil)
	require.Equal(t, http.StatusOK, status)
	// One organization, one workspace: alpha lets go of the fake's organization before bravo connects it by OAuth.
	status, _ = e.call(http.MethodDelete, "/v1/workspaces/alpha/integrations/linear", aTok, nil)
	require.Equal(t, http.StatusOK, status)

	// An OAuth callback brought back by another browser is refused; then the starting browser completes it.
	callback := e.authorize(b, bTok)
	cb, err := url.Parse(callback)
	require.NoError(t, err)
	for _, ck := range e.client.Jar.Cookies(cb) {
		secrets["oauth browser binding"] = ck.Value
	}
	status, _ = e.do(&http.Client{Transport: e.apiWire}, http.MethodGet, callback[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusForbidden, status)
	status, _ = e.call(http.MethodGet, callback[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusOK, status)
	secrets["oauth code"] = cb.Query().Get("code")
	_, creds, err := e.db.ConnectionCredentials(t.Context(), b.ID)
	require.NoError(t, err)
	secrets["oauth access token"], secrets["oauth refresh token"] = creds.Credential, creds.RefreshToken
	for _, w := range e.fake.Webhooks() {
		secrets["webhook secret "+w.ID] = w.Secret
	}
	_, err = e.db.Pool().Exec(t.Context(), `UPDATE linear_connections SET access_token_expires_at = now() WHERE workspace_id = $1`, b.ID)
	require.NoError(t, err)
	status, _ = e.call(http.MethodGet, "/v1/workspaces/bravo/integrations/linear/webhooks", bTok, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = e.call(http.MethodDelete, "/v1/workspaces/bravo/integrations/linear", bTok, nil) // refreshes, then revokes
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, e.fake.Flush(context.Background()))

	// The codec endpoint, with a wrong token and with the operators' one: neither token reaches a log line.
	secrets["codec token"] = accessCodecToken
	for token, want := range map[string]int{"lsc_wrong-codec-token-0000": http.StatusUnauthorized, accessCodecToken: http.StatusOK} {
		resp, raw := e.request(http.DefaultClient, http.MethodPost, "/codec/encode",
			map[string]any{"payloads": []any{map[string]any{"metadata": map[string]any{"encoding": "anNvbi9wbGFpbg=="}, "data": "InBsYWluIg=="}}},
			"Authorization", "Bearer "+token, "Content-Type", "application/json")
		require.Equal(t, want, resp.StatusCode, string(raw))
		require.NotContains(t, string(raw), accessCodecToken)
	}

	// Notification targets: a Slack URL is its own credential; a webhook target's signing secret is shown once, in
	// the answer that creates it, and nowhere else.
	slackURL := "https://hooks.slack.com/services/T0LINSYNC/B0LINSYNC/sl4ckS3cretPathValue"
	status, body = e.call(http.MethodPost, "/v1/workspaces/bravo/notification-targets", bTok,
		map[string]any{"name": "slack", "kind": "slack", "url": slackURL})
	require.Equal(t, http.StatusCreated, status, "body: %v", body)
	secrets["slack webhook url"], secrets["slack webhook url path"] = slackURL, "sl4ckS3cretPathValue"
	status, body = e.call(http.MethodPost, "/v1/workspaces/bravo/notification-targets", bTok,
		map[string]any{"name": "hook", "kind": "webhook", "url": "https://hooks.example.com/linsync?token=q5eCr3tQueryValue"})
	require.Equal(t, http.StatusCreated, status, "body: %v", body)
	hookSecret := body["secret"].(string)
	secrets["webhook target query token"] = "q5eCr3tQueryValue"
	status, _ = e.call(http.MethodGet, "/v1/workspaces/bravo/notification-targets", bTok, nil)
	require.Equal(t, http.StatusOK, status)

	logs := e.logs.String()
	require.Contains(t, logs, "linear webhook registered", "the logs were captured")
	require.Contains(t, logs, "notification target created")
	require.NotContains(t, logs, hookSecret, "a webhook target's signing secret leaked into the logs")
	responses := string(joinBodies(e.apiWire.Bodies()))
	require.Contains(t, responses, "secret_last4")
	for name, s := range secrets {
		require.NotEmpty(t, s, name)
		require.NotContains(t, logs, s, "%s leaked into the logs", name)
		require.NotContains(t, responses, s, "%s leaked into a response", name)
	}
}
