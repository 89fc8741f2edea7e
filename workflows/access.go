package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/activities"
)

// handleOAuthAppRevoked marks the organization's OAuth connections revoked, so work for them fails fast and
// non-retryably with the reason instead of hammering Linear with dead tokens.
func handleOAuthAppRevoked(ctx workflow.Context, in LinearDeliveryInput) (string, string, error) {
	var a *activities.Access
	var res activities.OAuthAppRevokedResult
	err := workflow.ExecuteActivity(storeContext(ctx), a.RevokeOAuthApp, activities.OAuthAppRevokedInput{
		DeliveryID: in.DeliveryID, WorkspaceID: in.WorkspaceID, OrganizationID: in.OrganizationID, Body: in.Body,
	}).Get(ctx, &res)
	if err != nil {
		return "", "", fmt.Errorf("revoke oauth connections of organization %s: %w", in.OrganizationID, err)
	}
	if len(res.WorkspaceIDs) == 0 {
		return linsync.OutcomeIgnored, res.Ignored, nil
	}
	return linsync.OutcomeProcessed, fmt.Sprintf("revoked %d OAuth connection(s)", len(res.WorkspaceIDs)), nil
}

// handleUserChanged pauses the workspace's connection when Linear reports its user deactivated: the personal API key
// of a user who left dies with them.
func handleUserChanged(ctx workflow.Context, in LinearDeliveryInput) (string, string, error) {
	var a *activities.Access
	var res activities.UserChangedResult
	err := workflow.ExecuteActivity(storeContext(ctx), a.ConnectionUserChanged, activities.OAuthAppRevokedInput{
		DeliveryID: in.DeliveryID, WorkspaceID: in.WorkspaceID, OrganizationID: in.OrganizationID, Body: in.Body,
	}).Get(ctx, &res)
	if err != nil {
		return "", "", fmt.Errorf("check user %s against the connection: %w", in.EntityID, err)
	}
	if !res.Paused {
		return linsync.OutcomeIgnored, res.Detail, nil
	}
	return linsync.OutcomeProcessed, res.Detail, nil
}
