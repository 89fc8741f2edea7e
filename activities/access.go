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
