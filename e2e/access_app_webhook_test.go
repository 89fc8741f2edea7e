package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
	"github.com/linsync/linsync/linear"
)

// TestOAuthAppRevokedThroughTheAppWebhook is "OAuthApp revoked" as Linear sends it: through the OAuth application's
// own webhook, signed with the application's webhook secret (LINEAR_OAUTH_WEBHOOK_SECRET), naming the organization
// but no workspace. The OAuth-connected workspace of that organization is found, its connection revoked, and later
// work pauses for a reconnect. A body signed with a workspace's secret, or for an organization nobody connected,
// changes nothing; a redelivery is a duplicate.
func TestOAuthAppRevokedThroughTheAppWebhook(t *testing.T) {
	t.Parallel()
	const appSecret = "lin_wh_oauth_app_0123456789abcdef0123456789abcdef"
	e := newAccessEnv(t, accessOptions{worker: true, appSecret: appSecret})
	ws, tok := e.workspace("acme")
	e.connectOAuth(ws, tok)
	workspaceSecret := e.fake.Webhooks()[0].Secret

	revoked := func(org string) []byte {
		now := time.Now()
		return []byte(`{"action":"revoked","type":"OAuthApp","oauthClientId":"` + oauthClientID + `","organizationId":"` + org +
			`","createdAt":"` + now.UTC().Format("2006-01-02T15:04:05.000Z") + `","webhookId":"` + uuid.NewString() +
			`","webhookTimestamp":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`)
	}
	post := func(body []byte, secret, delivery string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/webhooks/linear-app", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("Linear-Event", "OAuthApp")
		req.Header.Set("User-Agent", "Linear-Webhook")
		req.Header.Set(linear.HeaderDelivery, delivery)
		req.Header.Set(linear.HeaderSignature, linear.Sign([]byte(secret), body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	st, out := post(revoked(e.sd.OrganizationID), workspaceSecret, uuid.NewString())
	require.Equal(t, http.StatusUnauthorized, st, "a workspace's secret does not sign app-level events: %v", out)
	st, out = post(revoked("another-organization"), appSecret, uuid.NewString())
	require.Equal(t, http.StatusNotFound, st, "no workspace is connected to that organization: %v", out)
	require.Equal(t, linsync.ConnectionActive, e.connection(ws.ID).Status)

	body, delivery := revoked(e.sd.OrganizationID), uuid.NewString()
	st, out = post(body, appSecret, delivery)
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, "accepted", out["status"])
	require.Eventually(t, func() bool { return e.connection(ws.ID).Status == linsync.ConnectionRevoked },
		30*time.Second, 100*time.Millisecond)
	require.Contains(t, e.connection(ws.ID).StatusReason, "OAuth application was revoked")
	st, out = post(body, appSecret, delivery)
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, "duplicate", out["status"], "Linear's retry of the same delivery starts nothing")

	_, _, err := activities.LinearFor(t.Context(), e.clients, ws.ID)
	requireNonRetryable(t, err, activities.ErrTypeConnectionPaused)
	_, hist := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/history", tok, nil)
	found := false
	for _, ev := range hist["events"].([]any) {
		found = found || ev.(map[string]any)["kind"] == linsync.AccessRevokedByLinear
	}
	require.True(t, found, "the history says Linear revoked it")
}
