package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear/lineartest"
)

// TestFakeLinearWebhooksPassIngress closes the loop between the fake Linear and linsync's own ingress: the
// deliveries the fake signs are verified, start their workflows and are recorded, whoever made the change.
func TestFakeLinearWebhooksPassIngress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, true)
	fake := lineartest.Start(t, lineartest.Options{})
	sd := fake.Seed()
	// The workspace's webhook for the fake's organization, with the secret the fake signs with.
	_, err := h.db.AddLinearWebhook(t.Context(), linsync.LinearWebhookInput{WorkspaceID: h.wsID, OrganizationID: sd.OrganizationID, Secret: testSecret})
	require.NoError(t, err)
	fake.AddWebhook(h.srv.URL+"/webhooks/linear/"+h.ws, testSecret)

	alice := fake.Human(sd.Alice.Email)
	var issueID string
	issueID, err = alice.CreateIssue(sd.Triage.ID, "Checkout is slow")
	require.NoError(t, err)
	require.NoError(t, alice.SetState(issueID, "started"))
	_, err = alice.Comment(issueID, "Looking into it")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, fake.Flush(ctx))
	deliveries := fake.Deliveries()
	require.GreaterOrEqual(t, len(deliveries), 3)

	require.Eventually(t, func() bool {
		recs, err := h.db.ListDeliveries(t.Context(), h.wsID, 100)
		require.NoError(t, err)
		seen := map[string]bool{}
		for _, r := range recs {
			if (r.Outcome == "processed" || r.Outcome == "ignored") && r.WorkspaceID == h.wsID {
				seen[r.EventType+"/"+r.Action] = true
			}
		}
		return seen["Issue/create"] && seen["Issue/update"] && seen["Comment/create"] && len(recs) == len(deliveries)
	}, 30*time.Second, 200*time.Millisecond, "every delivery the fake sent was accepted and recorded once")
}
