package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/workflows"
)

// TestWorkspaceMatchingByTeam is seed 002's workspace matching: two workspaces share one Linear organization and
// its webhook (same secret, posted to /webhooks/linear), each claiming its team. A delivery about a team goes to the
// workspace that claims it, whichever webhook row verified it; one about a team nobody claims is recorded as
// unclaimed and handled by nothing; a team claimed twice is refused.
func TestWorkspaceMatchingByTeam(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, true) // workspace "acme", webhook for testOrg signed with testSecret
	ctx := t.Context()
	other, err := h.db.CreateWorkspace(ctx, "globex", "Globex")
	require.NoError(t, err)
	_, err = h.db.AddLinearWebhook(ctx, linsync.LinearWebhookInput{WorkspaceID: other.ID, OrganizationID: testOrg, Secret: testSecret})
	require.NoError(t, err)
	_, acmeAdmin, err := h.db.CreateToken(ctx, h.wsID, "admin", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	_, globexAdmin, err := h.db.CreateToken(ctx, other.ID, "admin", []string{linsync.ScopeAdmin})
	require.NoError(t, err)
	claim := func(slug, token string, teams ...string) (int, map[string]any) {
		t.Helper()
		if teams == nil {
			teams = []string{}
		}
		resp, raw := h.request(h.client, http.MethodPut, "/v1/workspaces/"+slug+"/integrations/linear/claimed-teams",
			map[string]any{"team_ids": teams}, "Authorization", "Bearer "+token, "Content-Type", "application/json")
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		return resp.StatusCode, out
	}
	const acmeTeam, globexTeam, nobodys = "team-acme", "team-globex", "team-nobody"
	st, out := claim("acme", acmeAdmin, acmeTeam)
	require.Equal(t, http.StatusOK, st, out)
	require.Equal(t, testOrg, out["organization_id"])
	st, out = claim("globex", globexAdmin, globexTeam)
	require.Equal(t, http.StatusOK, st, out)
	st, out = claim("globex", globexAdmin, globexTeam, acmeTeam)
	require.Equal(t, http.StatusConflict, st, "a team belongs to one workspace: %v", out)
	st, out = claim("globex", globexAdmin) // unchanged by the refusal
	require.Equal(t, http.StatusOK, st, out)
	require.Empty(t, out["team_ids"])
	_, _ = claim("globex", globexAdmin, globexTeam)

	deliver := func(data map[string]any) (workspaceID, outcome string) {
		t.Helper()
		typ := "Issue"
		if _, ok := data["issueId"]; ok {
			typ = "Comment"
		}
		body, _ := json.Marshal(map[string]any{"action": "update", "type": typ, "organizationId": testOrg,
			"webhookTimestamp": time.Now().UnixMilli(), "createdAt": time.Now().UTC().Format(time.RFC3339Nano), "webhookId": "wh-shared",
			"data": data})
		d := delivery{path: "/webhooks/linear", body: body, id: uuid.NewString(), signature: linear.Sign([]byte(testSecret), body)}
		status, resp := h.post(d)
		require.Equal(t, http.StatusOK, status, resp)
		// The answer names the workflow of the workspace the delivery went to: linear-delivery:<workspace>:<id>.
		wf, _ := resp["workflow_id"].(string)
		parts := strings.Split(wf, ":")
		require.Len(t, parts, 3, wf)
		require.Equal(t, workflows.LinearDeliveryWorkflowID(parts[1], d.id), wf)
		var rec *linsync.Delivery
		require.Eventually(t, func() bool {
			var err error
			rec, err = h.db.FindDelivery(ctx, parts[1], d.id)
			return err == nil
		}, 30*time.Second, 50*time.Millisecond, "delivery %s recorded", d.id)
		return rec.WorkspaceID, rec.Outcome
	}
	issue := func(team string) map[string]any {
		return map[string]any{"id": uuid.NewString(), "title": "t", "priority": 2, "teamId": team,
			"team": map[string]any{"id": team, "key": "K", "name": "N"}}
	}
	ws, outcome := deliver(issue(globexTeam))
	require.Equal(t, other.ID, ws, "globex's team goes to globex")
	require.NotEqual(t, linsync.OutcomeUnclaimed, outcome)
	ws, _ = deliver(issue(acmeTeam))
	require.Equal(t, h.wsID, ws, "acme's team goes to acme")
	ws, outcome = deliver(issue(nobodys))
	require.Equal(t, linsync.OutcomeUnclaimed, outcome, "a team nobody claims is recorded as unclaimed")
	require.Contains(t, []string{h.wsID, other.ID}, ws)
	ws, _ = deliver(map[string]any{"id": uuid.NewString(), "body": "hi", "issueId": uuid.NewString(),
		"issue": map[string]any{"id": uuid.NewString(), "teamId": globexTeam}})
	require.Equal(t, other.ID, ws, "a comment follows its issue's team")
}
