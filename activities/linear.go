package activities

import (
	"context"
	"fmt"
	"net/http"
	"sync"

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

	mu      sync.Mutex
	clients map[string]versionedClient
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
