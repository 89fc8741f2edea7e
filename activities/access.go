package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
)

// Access keeps connections healthy: OAuth refreshes, revocations, webhook registrations.
type Access struct {
	DB     *postgres.DB
	Linear *linear.Clients
}

// OAuthAppRevokedInput is a verified "OAuthApp revoked" delivery.
type OAuthAppRevokedInput struct {
	DeliveryID     string `json:"delivery_id"`
	WorkspaceID    string `json:"workspace_id"`
	OrganizationID string `json:"organization_id"`
	Body           []byte `json:"body"`
}

// OAuthAppRevokedResult lists the workspaces whose connection was marked revoked.
type OAuthAppRevokedResult struct {
	WorkspaceIDs []string `json:"workspace_ids"`
	// Ignored says why nothing was revoked, when nothing was.
	Ignored string `json:"ignored,omitempty"`
}

// RevokeOAuthApp marks every active OAuth connection of the organization revoked, with a reason naming the
// delivery: Linear's admin uninstalled linsync's OAuth application, so its tokens no longer work. A revocation of
// some other application (a different client id) changes nothing. Idempotent: a redelivery finds nothing active.
func (a *Access) RevokeOAuthApp(ctx context.Context, in OAuthAppRevokedInput) (OAuthAppRevokedResult, error) {
	hook, err := linear.DecodeWebhook(in.Body)
	if err != nil {
		return OAuthAppRevokedResult{}, fmt.Errorf("decode OAuthApp delivery %s: %w", in.DeliveryID, err)
	}
	if a.Linear != nil && a.Linear.OAuth != nil && hook.OAuthClientID != a.Linear.OAuth.ClientID() {
		return OAuthAppRevokedResult{Ignored: "revocation of another OAuth application"}, nil
	}
	org := hook.OrganizationID
	if org == "" {
		org = in.OrganizationID
	}
	reason := fmt.Sprintf("the Linear OAuth application was revoked in organization %s (delivery %s); connect again", org, in.DeliveryID)
	conns, err := a.DB.RevokeOAuthConnections(ctx, in.WorkspaceID, org, reason)
	if err != nil {
		return OAuthAppRevokedResult{}, err
	}
	res := OAuthAppRevokedResult{WorkspaceIDs: []string{}}
	for _, c := range conns {
		res.WorkspaceIDs = append(res.WorkspaceIDs, c.WorkspaceID)
		if err := a.DB.RecordAccessEvent(ctx, linsync.AccessEvent{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID,
			Kind: linsync.AccessRevokedByLinear, Outcome: linsync.AccessOutcomeOK, Detail: reason}); err != nil {
			return res, err
		}
		activity.GetLogger(ctx).Info("linear oauth connection revoked", "workspace_id", c.WorkspaceID, "organization_id", org)
	}
	if len(conns) == 0 {
		res.Ignored = "no active OAuth connection of organization " + org
	}
	return res, nil
}

// UserChangedResult says whether a User delivery paused the workspace's connection.
type UserChangedResult struct {
	Paused bool   `json:"paused"`
	Detail string `json:"detail"`
}

// ConnectionUserChanged acts on a User delivery: when the Linear user the workspace's connection acts as was
// deactivated (offboarded), the connection is marked needs_reconnect at once, before Linear refuses its key, so work
// waits instead of failing. Any other user change is ignored. Idempotent: a connection already marked, or one
// whose credential changed since, is left as it is.
func (a *Access) ConnectionUserChanged(ctx context.Context, in OAuthAppRevokedInput) (UserChangedResult, error) {
	hook, err := linear.DecodeWebhook(in.Body)
	if err != nil || hook.User == nil {
		return UserChangedResult{Detail: "not a User delivery"}, nil
	}
	conn, err := a.DB.FindConnection(ctx, in.WorkspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return UserChangedResult{Detail: "workspace has no Linear connection"}, nil
	}
	if err != nil {
		return UserChangedResult{}, err
	}
	u := hook.User
	if u.ID != conn.ActorUserID || (u.Active && hook.Action != "remove") {
		return UserChangedResult{Detail: "not the connection's user, or still active"}, nil
	}
	reason := fmt.Sprintf("the Linear user %s (%s) that the connection acts as was deactivated (delivery %s); its key "+
		"no longer works; connect again with a service user's key", u.Name, u.Email, in.DeliveryID)
	changed, err := a.DB.MarkNeedsReconnect(ctx, in.WorkspaceID, conn.CredentialVersion, reason)
	if err != nil || !changed {
		return UserChangedResult{Detail: "connection already not active"}, err
	}
	activity.GetLogger(ctx).Info("linear connection needs a reconnect: its user was deactivated", "workspace_id", in.WorkspaceID)
	if err := a.DB.RecordAccessEvent(ctx, linsync.AccessEvent{WorkspaceID: in.WorkspaceID, ConnectionID: conn.ID,
		Kind: AccessUserDeactivated, Outcome: linsync.AccessOutcomeOK, Detail: reason}); err != nil {
		return UserChangedResult{}, err
	}
	return UserChangedResult{Paused: true, Detail: "the connection's user was deactivated; the connection needs a reconnect"}, nil
}

// AccessUserDeactivated is the access-history kind of a connection paused because its Linear user was deactivated.
const AccessUserDeactivated = "user_deactivated"
