package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestConnectRegistersWebhookThatVerifies connects by API key: linsync creates its webhook in the fake with a secret
// it generated, the fake's signed deliveries for a human's edit are accepted, and the list shows no secret.
func TestConnectRegistersWebhookThatVerifies(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{worker: true})
	ws, tok := e.workspace("acme")
	body := e.connectAPIKey(ws, tok)
	hook := body["webhook"].(map[string]any)
	require.Equal(t, true, hook["managed"])

	linearHooks := e.fake.Webhooks()
	require.Len(t, linearHooks, 1)
	lh := linearHooks[0]
	require.Equal(t, hook["linear_webhook_id"], lh.ID)
	require.Equal(t, e.srv.URL+"/webhooks/linear/acme", lh.URL)
	require.True(t, lh.AllPublicTeams)
	require.ElementsMatch(t, []string{"Issue", "Comment", "IssueLabel", "Reaction", "Project", "Cycle", "IssueSLA"}, lh.ResourceTypes)
	require.True(t, strings.HasPrefix(lh.Secret, "lsw_"), "linsync generated the secret, not Linear")
	require.Equal(t, "…"+lh.Secret[len(lh.Secret)-4:], hook["secret_last4"])

	issueID, err := e.fake.Human(e.sd.Alice.Email).CreateIssue(e.sd.Plain.ID, "Dashboard is blank")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.fake.Flush(ctx))
	var delivered int
	for _, d := range e.fake.Deliveries() {
		if d.WebhookID == lh.ID {
			delivered++
			require.Equal(t, http.StatusOK, d.Status, "linsync verified the fake's signature: %s", d.Err)
		}
	}
	require.Positive(t, delivered, "issue %s was delivered", issueID)

	status, list := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/webhooks", tok, nil)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, list["webhooks"], 1)
	require.NotContains(t, e.logs.String()+string(joinBodies(e.apiWire.Bodies())), lh.Secret)

	// Connecting again keeps the one webhook.
	e.connectAPIKey(ws, tok)
	require.Len(t, e.fake.Webhooks(), 1)
}

// TestConnectRefusals: an invalid key, a key revoked in Linear and an unknown team are each a 400 naming the
// problem, and nothing is stored or registered.
func TestConnectRefusals(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	ws, tok := e.workspace("acme")
	revoked := "lin_api_revoked000000000000000000000000000000"
	require.NoError(t, e.fake.AddAPIKey(e.sd.Bot.Email, revoked))
	e.fake.RevokeKey(revoked)

	cases := []struct {
		name, key, team, field, message string
	}{
		{"invalid key", "lin_api_not_a_key_at_all_000000000000000000", e.sd.Plain.ID, "", "Linear rejected the credential"},
		{"revoked key", revoked, e.sd.Plain.ID, "", "Linear rejected the credential"},
		{"unknown team", e.sd.APIKey, "NOPE", "default_team_id", `unknown team "NOPE"`},
	}
	for _, tc := range cases {
		status, body := e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/connect", tok,
			map[string]any{"api_key": tc.key, "default_team_id": tc.team})
		require.Equal(t, http.StatusBadRequest, status, tc.name)
		er := body["error"].(map[string]any)
		require.Equal(t, "invalid", er["code"], tc.name)
		require.Contains(t, er["message"], tc.message, tc.name)
		if tc.field != "" {
			require.Equal(t, tc.field, er["field"], tc.name)
		}
	}
	status, _ := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear", tok, nil)
	require.Equal(t, http.StatusNotFound, status, "no connection was stored")
	require.Empty(t, e.fake.Webhooks())
	hooks, err := e.db.ListLinearWebhooks(t.Context(), ws.ID)
	require.NoError(t, err)
	require.Empty(t, hooks)
}

// TestManualWebhookRotationGrace registers a manual webhook (the secret an admin pasted), rotates it: the new secret
// is accepted at once, the previous one until the grace window ends and not after.
func TestManualWebhookRotationGrace(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{noPublicURL: true, grace: 2 * time.Second, worker: true})
	ws, tok := e.workspace("acme")
	e.connectAPIKey(ws, tok)
	require.Empty(t, e.fake.Webhooks(), "without a public URL nothing is registered in Linear")

	status, body := e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/webhooks", tok,
		map[string]any{"secret": "lin_wh_pasted_old_secret_1234"})
	require.Equal(t, http.StatusCreated, status, "body: %v", body)
	hook := body["webhook"].(map[string]any)
	require.Equal(t, e.sd.OrganizationID, hook["organization_id"], "organization defaulted from the connection")
	require.Equal(t, false, hook["managed"])
	id := hook["id"].(string)

	path := "/webhooks/linear/acme"
	require.Equal(t, http.StatusOK, e.postSigned(path, issueBody(e.sd.OrganizationID, time.Now()), "lin_wh_pasted_old_secret_1234"))

	status, body = e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/webhooks/"+id+"/rotate", tok,
		map[string]any{"secret": "lin_wh_pasted_new_secret_5678"})
	require.Equal(t, http.StatusOK, status, "body: %v", body)
	require.Equal(t, "…5678", body["webhook"].(map[string]any)["secret_last4"])
	require.NotEmpty(t, body["webhook"].(map[string]any)["previous_secret_expires_at"])

	require.Equal(t, http.StatusOK, e.postSigned(path, issueBody(e.sd.OrganizationID, time.Now()), "lin_wh_pasted_new_secret_5678"), "new secret at once")
	require.Equal(t, http.StatusOK, e.postSigned(path, issueBody(e.sd.OrganizationID, time.Now()), "lin_wh_pasted_old_secret_1234"), "old secret within grace")
	require.Eventually(t, func() bool {
		return e.postSigned(path, issueBody(e.sd.OrganizationID, time.Now()), "lin_wh_pasted_old_secret_1234") == http.StatusUnauthorized
	}, 10*time.Second, 250*time.Millisecond, "old secret refused after grace")
	require.Equal(t, http.StatusOK, e.postSigned(path, issueBody(e.sd.OrganizationID, time.Now()), "lin_wh_pasted_new_secret_5678"))

	status, body = e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/webhooks/"+id+"/rotate", tok, map[string]any{})
	require.Equal(t, http.StatusUnprocessableEntity, status, "a manual rotation needs the new secret: %v", body)
}

// TestManagedWebhookRotateAndDelete rotates linsync's webhook: the fake signs with the new secret, which verifies,
// and the old one is still accepted in the grace window; delete removes it in Linear too.
func TestManagedWebhookRotateAndDelete(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{worker: true})
	ws, tok := e.workspace("acme")
	hook := e.connectAPIKey(ws, tok)["webhook"].(map[string]any)
	id := hook["id"].(string)
	old := e.fake.Webhooks()[0].Secret
	lwh := e.fake.Webhooks()[0].ID

	status, body := e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/webhooks/"+id+"/rotate", tok, nil)
	require.Equal(t, http.StatusOK, status, "body: %v", body)
	fresh := e.fake.Webhooks()[0].Secret
	require.NotEqual(t, old, fresh, "the new secret was set in Linear")
	require.Equal(t, "…"+fresh[len(fresh)-4:], body["webhook"].(map[string]any)["secret_last4"])
	require.Equal(t, http.StatusOK, e.postSigned("/webhooks/linear/acme", bodyFrom(e.sd.OrganizationID, lwh), old), "old secret in grace")

	_, err := e.fake.Human(e.sd.Alice.Email).CreateIssue(e.sd.Plain.ID, "After rotation")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.fake.Flush(ctx))
	for _, d := range e.fake.Deliveries() {
		require.Equal(t, http.StatusOK, d.Status, "delivery signed with the rotated secret verifies: %s", d.Err)
	}

	status, _ = e.call(http.MethodDelete, "/v1/workspaces/acme/integrations/linear/webhooks/"+id, tok, nil)
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, e.fake.Webhooks(), "deleted in Linear")
	require.Equal(t, http.StatusUnauthorized, e.postSigned("/webhooks/linear/acme", bodyFrom(e.sd.OrganizationID, lwh), fresh),
		"a workspace without webhooks answers as a bad signature")
}

// TestOAuthConnectAndDisconnect runs the authorization code flow with PKCE against the fake authorization server,
// then disconnects: webhook deleted in Linear, tokens revoked, the connection kept as disconnected history.
func TestOAuthConnectAndDisconnect(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	ws, tok := e.workspace("acme")

	status, start := e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/oauth/start", tok, nil)
	require.Equal(t, http.StatusOK, status, "body: %v", start)
	u, err := url.Parse(start["authorize_url"].(string))
	require.NoError(t, err)
	q := u.Query()
	require.Equal(t, oauthClientID, q.Get("client_id"))
	require.Equal(t, "read,write,admin", q.Get("scope"), "scopes are comma-separated")
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.Equal(t, "app", q.Get("actor"))
	require.Equal(t, "code", q.Get("response_type"))
	require.Len(t, q.Get("state"), 43)
	status, redirect := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/oauth/start", tok, nil)
	require.Equal(t, http.StatusFound, status)
	require.True(t, strings.HasPrefix(redirect["_location"].(string), e.fake.BaseURL()+"/oauth/authorize?"))

	callback, body := e.connectOAuth(ws, tok)
	conn := body["connection"].(map[string]any)
	require.Equal(t, "oauth", conn["auth_kind"])
	require.Equal(t, e.sd.Plain.ID, conn["default_team_id"], "named by its key, stored by its id")
	require.Equal(t, e.sd.Bot.ID, conn["actor_user_id"])
	require.NotNil(t, body["webhook"])
	require.Equal(t, 1, e.fake.OAuthStats().CodeExchanges)

	status, replay := e.call(http.MethodGet, callback[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusBadRequest, status, "a callback cannot be replayed: %v", replay)
	require.Equal(t, 1, e.fake.OAuthStats().CodeExchanges, "the replay never reached Linear")

	_, creds, err := e.db.ConnectionCredentials(t.Context(), ws.ID)
	require.NoError(t, err)
	require.True(t, e.fake.AccessTokenValid(creds.Credential))
	lc, c, err := e.clients.For(t.Context(), ws.ID)
	require.NoError(t, err)
	require.Equal(t, linsync.AuthOAuth, c.AuthKind)
	v, err := lc.Viewer(t.Context())
	require.NoError(t, err)
	require.Equal(t, e.sd.Bot.ID, v.Id)

	status, body = e.call(http.MethodDelete, "/v1/workspaces/acme/integrations/linear", tok, nil)
	require.Equal(t, http.StatusOK, status, "body: %v", body)
	require.Equal(t, "disconnected", body["connection"].(map[string]any)["status"])
	require.Empty(t, e.fake.Webhooks(), "managed webhook deleted in Linear")
	require.False(t, e.fake.AccessTokenValid(creds.Credential), "access token revoked")
	require.False(t, e.fake.RefreshTokenValid(creds.RefreshToken), "refresh token revoked")
	_, _, err = activities.LinearFor(t.Context(), e.clients, ws.ID)
	requireNonRetryable(t, err, activities.ErrTypeConnectionSuspended)

	status, hist := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/history", tok, nil)
	require.Equal(t, http.StatusOK, status)
	kinds := map[string]bool{}
	for _, ev := range hist["events"].([]any) {
		m := ev.(map[string]any)
		kinds[m["kind"].(string)+"/"+m["outcome"].(string)] = true
	}
	for _, k := range []string{"connected/ok", "webhook_created/ok", "webhook_deleted/ok", "oauth_token_revoked/ok", "disconnected/ok"} {
		require.True(t, kinds[k], "history has %s: %v", k, kinds)
	}
	status, body = e.call(http.MethodDelete, "/v1/workspaces/acme/integrations/linear", tok, nil)
	require.Equal(t, http.StatusOK, status, "disconnecting twice is harmless: %v", body)
}

// TestOAuthCallbackRefusals: a forged, an expired and a missing state are 400 and reach neither Linear nor the
// store; an authorization code that expired at Linear is a 400 naming invalid_grant and stores nothing.
func TestOAuthCallbackRefusals(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	ws, tok := e.workspace("acme")

	expired := linear.RandomToken(32)
	require.NoError(t, e.db.CreateOAuthState(t.Context(), linsync.OAuthState{WorkspaceID: ws.ID, State: expired,
		CodeVerifier: "v", RedirectURI: e.oauth.RedirectURL(), ExpiresAt: time.Now().Add(-time.Second)}))
	for name, query := range map[string]string{
		"forged state":  "?code=whatever&state=" + linear.RandomToken(32),
		"expired state": "?code=whatever&state=" + expired,
		"no state":      "?code=whatever",
	} {
		status, body := e.call(http.MethodGet, "/v1/oauth/linear/callback"+query, "", nil)
		require.Equal(t, http.StatusBadRequest, status, "%s: %v", name, body)
		require.Equal(t, "invalid", errorCode(body), name)
	}
	require.Zero(t, e.fake.OAuthStats().CodeExchanges)

	callback := e.authorize(ws, tok)
	e.fake.ExpireOAuthCodes()
	status, body := e.call(http.MethodGet, callback[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusBadRequest, status, "body: %v", body)
	require.Contains(t, body["error"].(map[string]any)["message"], "invalid_grant")

	status, _ = e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear", tok, nil)
	require.Equal(t, http.StatusNotFound, status, "nothing stored")
	require.Empty(t, e.fake.Webhooks())
}

// TestOAuthRefreshRotationUnderConcurrency expires the stored access token and lets 2 × 16 goroutines of two
// linear.Clients (two worker processes) sharing one database ask for a client at once. The fake refuses any reuse
// of a consumed refresh token, so a lost rotation would fail: exactly one refresh happens, every caller gets a
// working client, and the stored refresh token is the live one.
func TestOAuthRefreshRotationUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{oauthApp: lineartest.OAuthApp{RefreshGrace: -1}})
	ws, tok := e.workspace("acme")
	e.connectOAuth(ws, tok)
	_, before, err := e.db.ConnectionCredentials(t.Context(), ws.ID)
	require.NoError(t, err)
	_, err = e.db.Pool().Exec(t.Context(), `UPDATE linear_connections SET access_token_expires_at = now() - interval '1 second'
		WHERE workspace_id = $1`, ws.ID)
	require.NoError(t, err)

	procs := []*linear.Clients{
		{Store: e.db, Endpoint: e.fake.URL(), OAuth: e.oauth},
		{Store: e.db, Endpoint: e.fake.URL(), OAuth: e.oauth},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			lc, _, err := procs[i%2].For(t.Context(), ws.ID)
			if err == nil {
				_, err = linear.Organization(t.Context(), lc.GQL())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	stats := e.fake.OAuthStats()
	require.Equal(t, 1, stats.Refreshes, "one refresh for all callers")
	require.Zero(t, stats.RefreshRejected)
	_, after, err := e.db.ConnectionCredentials(t.Context(), ws.ID)
	require.NoError(t, err)
	require.NotEqual(t, before.RefreshToken, after.RefreshToken, "rotated")
	require.True(t, e.fake.RefreshTokenValid(after.RefreshToken), "the stored refresh token is the live one")
	require.False(t, e.fake.RefreshTokenValid(before.RefreshToken))
	require.True(t, e.connection(ws.ID).AccessTokenExpiresAt.After(time.Now().Add(time.Hour)))
}

// TestOAuthAppRevokedMarksConnectionRevoked posts Linear's "OAuthApp revoked" through the real ingress: the delivery
// workflow marks the organization's OAuth connection revoked and later work is paused (it waits for a reconnect
// rather than failing).
func TestOAuthAppRevokedMarksConnectionRevoked(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{worker: true})
	ws, tok := e.workspace("acme")
	e.connectOAuth(ws, tok)
	secret, lwh := e.fake.Webhooks()[0].Secret, e.fake.Webhooks()[0].ID

	body := []byte(`{"action":"revoked","type":"OAuthApp","oauthClientId":"` + oauthClientID + `","organizationId":"` +
		e.sd.OrganizationID + `","createdAt":"` + time.Now().UTC().Format(time.RFC3339) + `","webhookId":"` + lwh + `","webhookTimestamp":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)
	require.Equal(t, http.StatusOK, e.postSigned("/webhooks/linear/acme", body, secret))
	require.Eventually(t, func() bool { return e.connection(ws.ID).Status == linsync.ConnectionRevoked },
		30*time.Second, 100*time.Millisecond)
	conn := e.connection(ws.ID)
	require.Contains(t, conn.StatusReason, "OAuth application was revoked")

	_, _, err := activities.LinearFor(t.Context(), e.clients, ws.ID)
	requireNonRetryable(t, err, activities.ErrTypeConnectionPaused)
	require.Contains(t, err.Error(), "revoked")
}

func requireNonRetryable(t *testing.T, err error, errType string) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	require.True(t, ae.NonRetryable())
	require.Equal(t, errType, ae.Type())
}

func joinBodies(bs [][]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
		out = append(out, '\n')
	}
	return out
}

// TestRefreshRefusedThroughTheAPIRevokes: the API's calls to Linear come from the same factory as the worker's, so
// when Linear refuses a connection's refresh token for good during an API request, the connection is marked revoked
// there too and the answer says to connect again.
func TestRefreshRefusedThroughTheAPIRevokes(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{oauthApp: lineartest.OAuthApp{RefreshGrace: -1}})
	ctx := t.Context()
	ws, tok := e.workspace("acme")
	e.connectOAuth(ws, tok)
	_, creds, err := e.db.ConnectionCredentials(ctx, ws.ID)
	require.NoError(t, err)
	_, err = e.oauth.Refresh(ctx, creds.RefreshToken) // consumed elsewhere: the stored one is now refused
	require.NoError(t, err)
	_, err = e.db.Pool().Exec(ctx, `UPDATE linear_connections SET access_token_expires_at = now() - interval '1 second'
		WHERE workspace_id = $1`, ws.ID)
	require.NoError(t, err)

	status, body := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/teams", tok, nil)
	require.Equal(t, http.StatusBadRequest, status, "%v", body)
	require.Contains(t, body["error"].(map[string]any)["message"], "connect again")
	conn := e.connection(ws.ID)
	require.Equal(t, linsync.ConnectionRevoked, conn.Status)
	require.Contains(t, conn.StatusReason, "Linear refused the refresh token")
}

// TestOAuthCallbackFromAnotherBrowserIsRefused: whoever holds the authorize URL holds the state, but the callback
// completes only in the browser that started the authorization (its linsync_oauth cookie). Brought back by another
// browser, it is refused before Linear is asked anything and the state stays usable where it started; there the
// answer names the organization and the workspace it joined.
func TestOAuthCallbackFromAnotherBrowserIsRefused(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	ws, tok := e.workspace("acme")
	callback := e.authorize(ws, tok)

	otherBrowser := &http.Client{Transport: e.apiWire, CheckRedirect: e.client.CheckRedirect}
	status, body := e.do(otherBrowser, http.MethodGet, callback[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusForbidden, status, "body: %v", body)
	require.Equal(t, "forbidden", errorCode(body))
	require.Zero(t, e.fake.OAuthStats().CodeExchanges, "the code was not exchanged")
	status, _ = e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear", tok, nil)
	require.Equal(t, http.StatusNotFound, status, "nothing stored")

	status, body = e.call(http.MethodGet, callback[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusOK, status, "the starting browser still completes it: %v", body)
	require.Equal(t, "acme", body["workspace"].(map[string]any)["slug"])
	require.Contains(t, body["confirmation"], e.sd.OrganizationID)
	require.Contains(t, body["confirmation"], "acme")
}

// TestOAuthRefusesAnOrganizationConnectedElsewhere: a Linear organization connected to one workspace cannot be
// connected to another by OAuth; the new grant is revoked and nothing is stored.
func TestOAuthRefusesAnOrganizationConnectedElsewhere(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	a, aTok := e.workspace("owner")
	e.connectOAuth(a, aTok)
	b, bTok := e.workspace("intruder")

	status, body := e.call(http.MethodGet, e.authorize(b, bTok)[len(e.srv.URL):], "", nil)
	require.Equal(t, http.StatusConflict, status, "body: %v", body)
	require.Contains(t, body["error"].(map[string]any)["message"], "already connected to another linsync workspace")
	status, _ = e.call(http.MethodGet, "/v1/workspaces/intruder/integrations/linear", bTok, nil)
	require.Equal(t, http.StatusNotFound, status, "nothing stored for the second workspace")
	require.Equal(t, linsync.ConnectionActive, e.connection(a.ID).Status, "the first workspace keeps its connection")
	require.Equal(t, 2, e.fake.OAuthStats().CodeExchanges)
}
