package activities

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Temporal error types for a workspace that cannot reach Linear at all; neither is retried.
const (
	ErrTypeNotConnected        = "LinearNotConnected"
	ErrTypeConnectionSuspended = "LinearConnectionSuspended"
)

// LinearClients hands activities a Linear client for a workspace, built from its stored connection and kept while
// the connection's credential is unchanged, so the client's look-up caches and rate budget carry across calls.
type LinearClients struct {
	DB         *postgres.DB
	Endpoint   string
	HTTPClient *http.Client
	Metrics    *linear.Metrics
	// OAuth refreshes OAuth access tokens before they expire; nil leaves them as they are.
	OAuth *linear.OAuthClient
	// RefreshWithin is how close to expiry an access token is refreshed. Default 5 min.
	RefreshWithin time.Duration

	mu         sync.Mutex
	clients    map[string]versionedClient
	refreshing map[string]*sync.Mutex
}

type versionedClient struct {
	version int
	client  *linear.Client
}

// For returns the workspace's connection and a client for it. A workspace with no connection, or a revoked or
// disconnected one, fails fast with a non-retryable error that says why.
func (p *LinearClients) For(ctx context.Context, workspaceID string) (*linear.Client, *linsync.LinearConnection, error) {
	conn, err := p.DB.FindConnection(ctx, workspaceID)
	switch {
	case linsync.ErrorCode(err) == linsync.ENOTFOUND:
		return nil, nil, temporal.NewNonRetryableApplicationError("workspace has no Linear connection", ErrTypeNotConnected, err)
	case err != nil:
		return nil, nil, err
	case conn.Status != linsync.ConnectionActive:
		return nil, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("Linear connection is %s: %s", conn.Status, conn.StatusReason), ErrTypeConnectionSuspended, nil)
	}
	if conn.AuthKind == linsync.AuthOAuth && p.OAuth != nil && conn.AccessTokenExpiresAt != nil &&
		time.Until(*conn.AccessTokenExpiresAt) <= p.refreshWithin() {
		if conn, err = p.refresh(ctx, workspaceID); err != nil {
			return nil, nil, err
		}
	}
	p.mu.Lock()
	vc, ok := p.clients[workspaceID]
	p.mu.Unlock()
	if ok && vc.version == conn.CredentialVersion {
		return vc.client, conn, nil
	}
	_, creds, err := p.DB.ConnectionCredentials(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	cred := linear.Credential{APIKey: creds.Credential}
	if conn.AuthKind == linsync.AuthOAuth {
		cred = linear.Credential{AccessToken: creds.Credential}
	}
	lc, err := linear.New(linear.Options{Credential: cred, Name: workspaceID, Endpoint: p.Endpoint,
		HTTPClient: p.HTTPClient, Metrics: p.Metrics})
	if err != nil {
		return nil, nil, temporal.NewNonRetryableApplicationError("build Linear client", ErrTypeNotConnected, err)
	}
	p.mu.Lock()
	if p.clients == nil {
		p.clients = map[string]versionedClient{}
	}
	p.clients[workspaceID] = versionedClient{version: conn.CredentialVersion, client: lc}
	p.mu.Unlock()
	return lc, conn, nil
}

func (p *LinearClients) refreshWithin() time.Duration {
	if p.RefreshWithin > 0 {
		return p.RefreshWithin
	}
	return 5 * time.Minute
}

// refresh renews the workspace's OAuth tokens. Goroutines of this process queue on a per-workspace mutex, so only
// one of them waits on the database; across processes the store serialises on the connection's row and re-reads it
// (postgres.RefreshOAuthConnection), so Linear's rotated refresh token is consumed once and never lost. A refresh
// token Linear refuses marks the connection revoked: no retry can help until an admin connects again.
func (p *LinearClients) refresh(ctx context.Context, workspaceID string) (*linsync.LinearConnection, error) {
	p.mu.Lock()
	if p.refreshing == nil {
		p.refreshing = map[string]*sync.Mutex{}
	}
	lock := p.refreshing[workspaceID]
	if lock == nil {
		lock = &sync.Mutex{}
		p.refreshing[workspaceID] = lock
	}
	p.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	oauth := p.OAuth
	conn, _, err := p.DB.RefreshOAuthConnection(ctx, workspaceID, p.refreshWithin(),
		func(ctx context.Context, refreshToken string) (*linsync.OAuthTokens, error) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			t, err := oauth.Refresh(ctx, refreshToken)
			if err != nil {
				return nil, err
			}
			return &linsync.OAuthTokens{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt, Scopes: t.Scopes}, nil
		})
	switch {
	case err == nil:
		return conn, nil
	case linear.IsPermanentOAuthError(err):
		reason := "Linear refused the refresh token (" + err.Error() + "); connect again"
		if serr := p.DB.SetConnectionStatus(context.WithoutCancel(ctx), workspaceID, linsync.ConnectionRevoked, reason); serr != nil {
			return nil, fmt.Errorf("mark connection of workspace %s revoked: %w", workspaceID, serr)
		}
		return nil, temporal.NewNonRetryableApplicationError(reason, ErrTypeConnectionSuspended, nil)
	case linsync.ErrorCode(err) == linsync.ECONFLICT || linsync.ErrorCode(err) == linsync.EUNAUTHORIZED:
		return nil, temporal.NewNonRetryableApplicationError(linsync.ErrorMessage(err), ErrTypeConnectionSuspended, nil)
	default:
		return nil, fmt.Errorf("refresh linear oauth token of workspace %s: %w", workspaceID, err)
	}
}
