package linear_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linear/lineartest"
)

// memStore is a ConnectionStore of one workspace's connection, in memory.
type memStore struct {
	mu    sync.Mutex
	conn  *linsync.LinearConnection
	creds linsync.LinearCredentials
}

func (s *memStore) FindConnection(_ context.Context, workspaceID string) (*linsync.LinearConnection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || s.conn.WorkspaceID != workspaceID {
		return nil, linsync.Errorf(linsync.ENOTFOUND, "linear connection not found")
	}
	c := *s.conn
	return &c, nil
}

func (s *memStore) ConnectionCredentials(ctx context.Context, workspaceID string) (*linsync.LinearConnection, *linsync.LinearCredentials, error) {
	c, err := s.FindConnection(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	creds := s.creds
	return c, &creds, nil
}

func (s *memStore) RefreshOAuthConnection(ctx context.Context, workspaceID string, _ time.Duration,
	refresh linsync.OAuthRefreshFunc) (*linsync.LinearConnection, *linsync.LinearCredentials, error) {
	s.mu.Lock()
	rt := s.creds.RefreshToken
	s.mu.Unlock()
	tok, err := refresh(ctx, rt)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.creds = linsync.LinearCredentials{Credential: tok.AccessToken, RefreshToken: tok.RefreshToken}
	s.conn.AccessTokenExpiresAt = &tok.ExpiresAt
	s.conn.CredentialVersion++
	s.mu.Unlock()
	return s.ConnectionCredentials(ctx, workspaceID)
}

func (s *memStore) SetConnectionStatus(_ context.Context, _, status, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.Status, s.conn.StatusReason = status, reason
	return nil
}

func (s *memStore) MarkNeedsReconnect(_ context.Context, _ string, version int, reason string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn.CredentialVersion != version || s.conn.Status != linsync.ConnectionActive {
		return false, nil
	}
	s.conn.Status, s.conn.StatusReason = linsync.ConnectionNeedsReconnect, reason
	return true, nil
}

func (s *memStore) bumpVersion() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.CredentialVersion++
}

// TestClientsKeepOneClientPerCredential: a workspace's client is reused while its credential is unchanged (so its
// caches and rate budget carry over), rebuilt when the credential changes, and every call is counted under the
// workspace in the shared metrics.
func TestClientsKeepOneClientPerCredential(t *testing.T) {
	t.Parallel()
	fake := lineartest.Start(t, lineartest.Options{})
	store := &memStore{conn: &linsync.LinearConnection{WorkspaceID: "ws1", AuthKind: linsync.AuthAPIKey,
		Status: linsync.ConnectionActive}, creds: linsync.LinearCredentials{Credential: fake.Seed().APIKey}}
	reg := prometheus.NewRegistry()
	m, err := linear.NewMetrics(reg)
	require.NoError(t, err)
	clients := &linear.Clients{Store: store, Endpoint: fake.URL(), Metrics: m}

	first, conn, err := clients.For(t.Context(), "ws1")
	require.NoError(t, err)
	require.Equal(t, "ws1", conn.WorkspaceID)
	again, _, err := clients.For(t.Context(), "ws1")
	require.NoError(t, err)
	require.Same(t, first, again, "the same credential keeps its client")
	store.bumpVersion()
	renewed, _, err := clients.For(t.Context(), "ws1")
	require.NoError(t, err)
	require.NotSame(t, first, renewed, "a new credential gets a new client")

	_, err = renewed.Viewer(t.Context())
	require.NoError(t, err)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP linsync_linear_requests_total Linear GraphQL requests by credential, operation and outcome (ok or error class).
# TYPE linsync_linear_requests_total counter
linsync_linear_requests_total{credential="ws1",operation="Viewer",outcome="ok"} 1
`), "linsync_linear_requests_total"), "the call is counted under the workspace")
}

// TestClientsRefusals: every reason a workspace has no client comes back as an error a caller can tell apart, and a
// refresh token Linear refuses for good marks the connection revoked.
func TestClientsRefusals(t *testing.T) {
	t.Parallel()
	fake := lineartest.Start(t, lineartest.Options{})
	tokenStatus := http.StatusBadRequest
	var mu sync.Mutex
	tokenEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(tokenStatus)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
	}))
	t.Cleanup(tokenEndpoint.Close)
	oauth, err := linear.NewOAuthClient(linear.OAuthConfig{ClientID: "cid", RedirectURL: "https://linsync.test/cb",
		TokenURL: tokenEndpoint.URL})
	require.NoError(t, err)
	expired := time.Now().Add(-time.Minute)
	store := &memStore{conn: &linsync.LinearConnection{WorkspaceID: "ws1", AuthKind: linsync.AuthOAuth,
		Status: linsync.ConnectionActive, AccessTokenExpiresAt: &expired},
		creds: linsync.LinearCredentials{Credential: fake.Seed().OAuthToken, RefreshToken: "rt"}}
	clients := &linear.Clients{Store: store, Endpoint: fake.URL(), OAuth: oauth}

	_, _, err = clients.For(t.Context(), "no-such-workspace")
	require.Equal(t, linsync.ENOTFOUND, linsync.ErrorCode(err))

	mu.Lock()
	tokenStatus = http.StatusServiceUnavailable
	mu.Unlock()
	_, _, err = clients.For(t.Context(), "ws1")
	var refresh *linear.RefreshError
	require.ErrorAs(t, err, &refresh)
	require.False(t, refresh.Revoked, "Linear's token endpoint being down may pass")
	require.Equal(t, linsync.ConnectionActive, store.conn.Status)

	mu.Lock()
	tokenStatus = http.StatusBadRequest
	mu.Unlock()
	_, _, err = clients.For(t.Context(), "ws1")
	require.ErrorAs(t, err, &refresh)
	require.True(t, refresh.Revoked, "a refresh token refused for good")
	require.True(t, linear.IsPermanentOAuthError(err))
	require.Equal(t, linsync.ConnectionRevoked, store.conn.Status, "the connection is marked revoked")
	require.Contains(t, store.conn.StatusReason, "Linear refused the refresh token")

	_, conn, err := clients.For(t.Context(), "ws1")
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err), "a revoked connection makes no client")
	require.Equal(t, linsync.ConnectionRevoked, conn.Status, "and says why")
	require.False(t, errors.As(err, &refresh))
}

// TestClientsMarkNeedsReconnectAtFirstRefusal: the first request Linear refuses for its credential (the key's owner
// left) marks the connection needs_reconnect and forgets the client, so the next For answers ECONFLICT without
// asking Linear; a refusal of a key already replaced changes nothing.
func TestClientsMarkNeedsReconnectAtFirstRefusal(t *testing.T) {
	t.Parallel()
	fake := lineartest.Start(t, lineartest.Options{})
	key := fake.Seed().APIKey
	store := &memStore{conn: &linsync.LinearConnection{WorkspaceID: "ws1", AuthKind: linsync.AuthAPIKey,
		Status: linsync.ConnectionActive, CredentialVersion: 1}, creds: linsync.LinearCredentials{Credential: key}}
	clients := &linear.Clients{Store: store, Endpoint: fake.URL()}

	lc, _, err := clients.For(t.Context(), "ws1")
	require.NoError(t, err)
	fake.RevokeKey(key)
	_, err = lc.Viewer(t.Context())
	require.Equal(t, linear.ClassUnauthorized, linear.ClassOf(err))
	conn, err := store.FindConnection(t.Context(), "ws1")
	require.NoError(t, err)
	require.Equal(t, linsync.ConnectionNeedsReconnect, conn.Status)
	require.Contains(t, conn.StatusReason, "connect again")
	before := len(fake.Requests())
	_, conn, err = clients.For(t.Context(), "ws1")
	require.Equal(t, linsync.ECONFLICT, linsync.ErrorCode(err))
	require.Equal(t, linsync.ConnectionNeedsReconnect, conn.Status)
	require.Len(t, fake.Requests(), before, "a paused connection does not ask Linear")

	// An admin connects again (a new credential version); a late refusal of the old client changes nothing.
	store.mu.Lock()
	store.conn.Status, store.conn.CredentialVersion = linsync.ConnectionActive, 2
	store.mu.Unlock()
	_, err = lc.Viewer(t.Context())
	require.Error(t, err)
	conn, _ = store.FindConnection(t.Context(), "ws1")
	require.Equal(t, linsync.ConnectionActive, conn.Status, "the old key's refusal does not pause the new one")
}
