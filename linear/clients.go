package linear

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/linsync/linsync"
)

// ConnectionStore is what Clients needs of linsync's store (postgres.DB is one): a workspace's Linear connection
// and its credentials, a refresh of its OAuth tokens serialised with every other refresher, and its status.
type ConnectionStore interface {
	FindConnection(ctx context.Context, workspaceID string) (*linsync.LinearConnection, error)
	ConnectionCredentials(ctx context.Context, workspaceID string) (*linsync.LinearConnection, *linsync.LinearCredentials, error)
	RefreshOAuthConnection(ctx context.Context, workspaceID string, within time.Duration,
		refresh linsync.OAuthRefreshFunc) (*linsync.LinearConnection, *linsync.LinearCredentials, error)
	SetConnectionStatus(ctx context.Context, workspaceID, status, reason string) error
	// MarkNeedsReconnect marks the connection needs_reconnect while it is active at credential version; it reports
	// whether it changed anything.
	MarkNeedsReconnect(ctx context.Context, workspaceID string, version int, reason string) (bool, error)
}

// RateLimitStore is what Clients needs of a ConnectionStore to share each credential's rate-limit state among
// processes (postgres.DB is one): NoteRateLimit keeps what a client learned, and FindConnection answers it back in
// LinearConnection.RateLimit, so reading it costs no round trip of its own.
type RateLimitStore interface {
	NoteRateLimit(ctx context.Context, workspaceID string, s linsync.SharedRateLimit) error
}

// Clients is linsync's one factory of Linear clients, for the api and the worker alike. For hands out a workspace's
// client, built from its stored connection and kept while the connection's credential is unchanged, so the client's
// look-up caches and rate budget carry across calls; it refreshes an OAuth access token about to expire and marks
// the connection revoked when Linear refuses the refresh token for good. New builds a client for a credential being
// tried, before anything is stored. Every client counts its calls in Metrics. When Store is a RateLimitStore, the
// clients of all processes share each credential's refusals and low windows (see linear.Options.Share).
type Clients struct {
	Store ConnectionStore
	// Endpoint is Linear's GraphQL endpoint; empty means DefaultEndpoint.
	Endpoint   string
	HTTPClient *http.Client
	// Timeout bounds one request when HTTPClient is nil; 0 means the client's default.
	Timeout time.Duration
	// Metrics receives every client's request, cache and rate-budget metrics; nil disables them.
	Metrics *Metrics
	// TracerProvider, when set, traces every client's requests (see Options.TracerProvider).
	TracerProvider trace.TracerProvider
	// OAuth refreshes OAuth access tokens before they expire; nil leaves them as they are.
	OAuth *OAuthClient
	// RefreshWithin is how close to expiry an access token is refreshed. Default 5 min.
	RefreshWithin time.Duration

	mu         sync.Mutex
	clients    map[string]versionedClient
	refreshing map[string]*sync.Mutex
}

type versionedClient struct {
	version int
	client  *Client
}

// RefreshError is a failed refresh of a workspace's OAuth access token. Revoked says Linear refused the refresh
// token for good: the connection has been marked revoked with Reason, and only connecting again helps. Otherwise a
// later attempt may succeed.
type RefreshError struct {
	WorkspaceID string
	Revoked     bool
	Reason      string
	Err         error
}

func (e *RefreshError) Error() string {
	if e.Revoked {
		return e.Reason
	}
	return fmt.Sprintf("refresh linear oauth token of workspace %s: %v", e.WorkspaceID, e.Err)
}

func (e *RefreshError) Unwrap() error { return e.Err }

// New returns a client for cred, with the factory's endpoint, transport, timeout and metrics.
func (c *Clients) New(cred Credential, name string) (*Client, error) {
	return New(c.options(cred, name))
}

// options are the factory's settings for one client of cred.
func (c *Clients) options(cred Credential, name string) Options {
	return Options{Credential: cred, Name: name, Endpoint: c.Endpoint, HTTPClient: c.HTTPClient, Timeout: c.Timeout,
		Metrics: c.Metrics, TracerProvider: c.TracerProvider}
}

// For returns the workspace's connection and a client for it. Its errors say why there is none: the store's
// ENOTFOUND when the workspace has no connection; ECONFLICT when the connection is not active (returned with the
// connection, which says why); a *RefreshError when its OAuth token could not be refreshed; the store's ECONFLICT
// or EUNAUTHORIZED when the connection changed during the refresh or has no refresh token; EINVALID when the stored
// credential cannot make a client.
func (c *Clients) For(ctx context.Context, workspaceID string) (*Client, *linsync.LinearConnection, error) {
	conn, err := c.Store.FindConnection(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if conn.Status != linsync.ConnectionActive {
		return nil, conn, linsync.Errorf(linsync.ECONFLICT, "the Linear connection is %s: %s", conn.Status, conn.StatusReason)
	}
	if conn.AuthKind == linsync.AuthOAuth && c.OAuth != nil && conn.AccessTokenExpiresAt != nil &&
		time.Until(*conn.AccessTokenExpiresAt) <= c.refreshWithin() {
		if conn, err = c.refresh(ctx, workspaceID); err != nil {
			return nil, nil, err
		}
	}
	c.mu.Lock()
	vc, ok := c.clients[workspaceID]
	c.mu.Unlock()
	if ok && vc.version == conn.CredentialVersion {
		vc.client.adoptShared(conn.RateLimit)
		return vc.client, conn, nil
	}
	shared := conn.RateLimit
	conn, creds, err := c.Store.ConnectionCredentials(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	conn.RateLimit = shared
	cred := Credential{APIKey: creds.Credential}
	if conn.AuthKind == linsync.AuthOAuth {
		cred = Credential{AccessToken: creds.Credential}
	}
	opts := c.options(cred, workspaceID)
	opts.OnUnauthorized = c.unauthorized(workspaceID, conn.CredentialVersion)
	opts.Share = c.sharer(workspaceID)
	lc, err := New(opts)
	if err != nil {
		return nil, nil, linsync.Errorf(linsync.EINVALID, "invalid Linear credential")
	}
	lc.adoptShared(shared)
	c.mu.Lock()
	if c.clients == nil {
		c.clients = map[string]versionedClient{}
	}
	c.clients[workspaceID] = versionedClient{version: conn.CredentialVersion, client: lc}
	c.mu.Unlock()
	return lc, conn, nil
}

// unauthorized marks the workspace's connection needs_reconnect when Linear refuses its credential, and forgets the
// client, so every later call, in the api or the worker, finds the connection paused without asking Linear again.
// Only the credential the client was built with is marked: a refusal of a replaced key changes nothing.
func (c *Clients) unauthorized(workspaceID string, version int) func(context.Context, *Error) {
	return func(ctx context.Context, e *Error) {
		reason := "Linear refused the stored credential (" + e.Message + "): its key was deleted or its owner " +
			"left, or the OAuth grant was revoked; connect again"
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := c.Store.MarkNeedsReconnect(ctx, workspaceID, version, reason); err != nil {
			return // the next refusal tries again
		}
		c.mu.Lock()
		if vc, ok := c.clients[workspaceID]; ok && vc.version == version {
			delete(c.clients, workspaceID)
		}
		c.mu.Unlock()
	}
}

// sharer notes a workspace's rate-limit state in the store, when it can keep it. Sharing is best effort: a note
// that fails leaves the other processes to learn the limit from Linear, as they would without it.
func (c *Clients) sharer(workspaceID string) func(linsync.SharedRateLimit) {
	rs, ok := c.Store.(RateLimitStore)
	if !ok {
		return nil
	}
	return func(s linsync.SharedRateLimit) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = rs.NoteRateLimit(ctx, workspaceID, s)
	}
}

func (c *Clients) refreshWithin() time.Duration {
	if c.RefreshWithin > 0 {
		return c.RefreshWithin
	}
	return 5 * time.Minute
}

// refresh renews the workspace's OAuth tokens. Goroutines of this process queue on a per-workspace mutex, so only
// one of them waits on the database; across processes the store serialises on the connection's row and re-reads it
// (postgres.DB.RefreshOAuthConnection), so Linear's rotated refresh token is consumed once and never lost. A refresh
// token Linear refuses marks the connection revoked: no retry can help until an admin connects again.
func (c *Clients) refresh(ctx context.Context, workspaceID string) (*linsync.LinearConnection, error) {
	c.mu.Lock()
	if c.refreshing == nil {
		c.refreshing = map[string]*sync.Mutex{}
	}
	lock := c.refreshing[workspaceID]
	if lock == nil {
		lock = &sync.Mutex{}
		c.refreshing[workspaceID] = lock
	}
	c.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	oauth := c.OAuth
	conn, _, err := c.Store.RefreshOAuthConnection(ctx, workspaceID, c.refreshWithin(),
		func(ctx context.Context, refreshToken string) (*linsync.OAuthTokens, error) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			t, err := oauth.Refresh(ctx, refreshToken)
			if err != nil {
				return nil, err
			}
			return &linsync.OAuthTokens{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt, Scopes: t.Scopes}, nil
		})
	switch code := linsync.ErrorCode(err); {
	case err == nil:
		return conn, nil
	case IsPermanentOAuthError(err):
		reason := "Linear refused the refresh token (" + err.Error() + "); connect again"
		if serr := c.Store.SetConnectionStatus(context.WithoutCancel(ctx), workspaceID, linsync.ConnectionRevoked, reason); serr != nil {
			return nil, fmt.Errorf("mark connection of workspace %s revoked: %w", workspaceID, serr)
		}
		return nil, &RefreshError{WorkspaceID: workspaceID, Revoked: true, Reason: reason, Err: err}
	case code == linsync.ECONFLICT || code == linsync.EUNAUTHORIZED:
		return nil, err
	default:
		return nil, &RefreshError{WorkspaceID: workspaceID, Err: err}
	}
}
