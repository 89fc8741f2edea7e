package linsync

import (
	"context"
	"time"
)

// ConnectionInput is a validated connection to Linear to store for a workspace.
type ConnectionInput struct {
	WorkspaceID      string
	OrganizationID   string
	OrganizationName string
	AuthKind         string // AuthAPIKey or AuthOAuth
	// Credential is the personal API key or the OAuth access token.
	Credential   string
	RefreshToken string
	ExpiresAt    *time.Time
	OAuthScopes  []string
	ActorUserID  string
	ActorName    string
	DefaultTeam  string
	Priority     int
	Labels       []string
}

// LinearCredentials are a connection's secrets in clear, for the Linear client only.
type LinearCredentials struct {
	// Credential is the personal API key or the OAuth access token.
	Credential   string
	RefreshToken string
}

// OAuthState is an OAuth authorization in flight: what the callback presenting its state needs to finish it.
type OAuthState struct {
	WorkspaceID     string
	State           string // in clear only on the way in; stored as a hash
	CodeVerifier    string // PKCE verifier, stored encrypted
	RedirectURI     string
	DefaultTeamID   string
	DefaultPriority int
	DefaultLabels   []string
	ExpiresAt       time.Time
	// BrowserNonce is the nonce of the cookie sent to the browser that started the authorization; stored as a hash,
	// the callback must bring it back.
	BrowserNonce string
}

// OAuthTokens are the tokens one OAuth grant or refresh returned.
type OAuthTokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	Scopes       []string
}

// OAuthRefreshFunc exchanges a refresh token at Linear's token endpoint.
type OAuthRefreshFunc func(ctx context.Context, refreshToken string) (*OAuthTokens, error)

// WebhookRecord is a registered Linear webhook as administrators see it: never its secret, only the last four
// characters.
type WebhookRecord struct {
	ID                      string     `json:"id"`
	WorkspaceID             string     `json:"workspace_id"`
	ConnectionID            string     `json:"connection_id,omitempty"`
	OrganizationID          string     `json:"organization_id"`
	TeamID                  string     `json:"team_id,omitempty"`
	LinearWebhookID         string     `json:"linear_webhook_id,omitempty"`
	Managed                 bool       `json:"managed"`
	URL                     string     `json:"url,omitempty"`
	ResourceTypes           []string   `json:"resource_types"`
	SecretLast4             string     `json:"secret_last4"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	// RotationPending: a new secret is stored and accepted but Linear has not confirmed signing with it; rotating
	// again completes the rotation with that same secret.
	RotationPending bool      `json:"rotation_pending,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// MaxWebhooksPerWorkspace bounds the Linear webhooks one workspace may register, and so the secrets stored per
// tenant that ingress could be asked to check.
const MaxWebhooksPerWorkspace = 20

// WebhookRegistration is a Linear webhook to store: one linsync created in Linear (Managed) or one an admin created
// and whose secret they pasted.
type WebhookRegistration struct {
	// ID is linsync's id; for a managed webhook it is also the id chosen for Linear, so a retried create is
	// recognised.
	ID              string
	WorkspaceID     string
	ConnectionID    string
	OrganizationID  string
	TeamID          string
	LinearWebhookID string
	Managed         bool
	URL             string
	ResourceTypes   []string
	Secret          string
}

// Access event kinds recorded in a workspace's access history.
const (
	AccessConnected       = "connected"
	AccessWebhookCreated  = "webhook_created"
	AccessWebhookDeleted  = "webhook_deleted"
	AccessWebhookRotated  = "webhook_rotated"
	AccessTokenRevoked    = "oauth_token_revoked"
	AccessTokenRefreshed  = "oauth_token_refreshed"
	AccessDisconnected    = "disconnected"
	AccessRevokedByLinear = "revoked_by_linear"
	AccessOutcomeOK       = "ok"
	AccessOutcomeFailed   = "failed"
)

// AccessEvent is one step in a workspace's access history.
type AccessEvent struct {
	ID           int64     `json:"id"`
	WorkspaceID  string    `json:"workspace_id"`
	ConnectionID string    `json:"connection_id,omitempty"`
	Kind         string    `json:"kind"`
	Outcome      string    `json:"outcome"`
	Detail       string    `json:"detail,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// LinearWebhookInput describes a Linear webhook to register with linsync.
type LinearWebhookInput struct {
	WorkspaceID     string
	OrganizationID  string
	TeamID          string // empty: all public teams
	LinearWebhookID string // Linear's id, when linsync created the webhook
	Secret          string
}

// PausedWork is a workflow waiting for its workspace to reconnect to Linear.
type PausedWork struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Reason     string    `json:"reason"`
	Since      time.Time `json:"since"`
}
