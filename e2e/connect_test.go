package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// secTeamID and opsTeamID are private teams the connect tests add to the fake.
const (
	secTeamID = "7ea30000-0000-4000-8000-000000000003"
	opsTeamID = "7ea30000-0000-4000-8000-000000000004"
)

// TestConnectLikeAnIntegrationCard is connecting as seed 004's integration card does: the key is validated and its
// teams listed for a picker before anything is stored, the picked default team, priority and labels are stored and
// shown, and each can be changed later; a private default team gets a webhook of its own, which follows the team.
func TestConnectLikeAnIntegrationCard(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	e.fake.AddTeam(secTeamID, "SEC", "Security", false, true, 3)
	ws, tok := e.workspace("acme")
	base := "/v1/workspaces/" + ws.Slug + "/integrations/linear"

	st, body := e.call(http.MethodPost, base+"/validate", tok, map[string]any{"api_key": "lin_api_not_a_key_000000000000000000000000"})
	require.Equal(t, http.StatusBadRequest, st, body)
	require.Contains(t, body["error"].(map[string]any)["message"], "Linear rejected the credential")
	st, body = e.do(http.DefaultClient, http.MethodPost, base+"/validate", tok, map[string]any{}) // off the document on purpose
	require.Equal(t, http.StatusUnprocessableEntity, st, body)
	require.Equal(t, "api_key", body["error"].(map[string]any)["field"])

	st, body = e.call(http.MethodPost, base+"/validate", tok, map[string]any{"api_key": e.sd.APIKey})
	require.Equal(t, http.StatusOK, st, body)
	require.Equal(t, e.sd.Bot.Email, body["viewer"].(map[string]any)["email"])
	require.Equal(t, e.sd.OrganizationID, body["organization"].(map[string]any)["id"])
	private := map[string]bool{}
	for _, tm := range body["teams"].([]any) {
		m := tm.(map[string]any)
		private[m["key"].(string)] = m["private"].(bool)
	}
	require.Equal(t, map[string]bool{"SUP": false, "ENG": false, "SEC": true}, private, "the picker shows every team and which are private")
	st, _ = e.call(http.MethodGet, base, tok, nil)
	require.Equal(t, http.StatusNotFound, st, "validating stores nothing")
	require.Empty(t, e.fake.Webhooks(), "and registers nothing")
	require.NotContains(t, e.logs.String()+string(joinBodies(e.apiWire.Bodies())), e.sd.APIKey)

	// The admin picks the private team by its key.
	st, body = e.call(http.MethodPost, base+"/connect", tok, map[string]any{"api_key": e.sd.APIKey, "default_team_id": "sec",
		"default_priority": 2, "labels": []string{"short-link", "auto-filed"}})
	require.Equal(t, http.StatusOK, st, body)
	created := body["team_webhooks"].(map[string]any)["created"].([]any)
	require.Len(t, created, 1)
	require.Equal(t, secTeamID, created[0].(map[string]any)["team_id"])
	requireFakeHooks(t, e, map[string]bool{"": true, secTeamID: true})

	st, body = e.call(http.MethodGet, base, tok, nil)
	require.Equal(t, http.StatusOK, st, body)
	conn := body["connection"].(map[string]any)
	require.Equal(t, secTeamID, conn["default_team_id"], "the key was stored as the team's id")
	require.EqualValues(t, 2, conn["default_priority"])
	require.Equal(t, []any{"short-link", "auto-filed"}, conn["default_labels"])

	// Each default changes on its own.
	st, body = e.call(http.MethodPatch, base, tok, map[string]any{"default_priority": 4})
	require.Equal(t, http.StatusOK, st, body)
	conn = body["connection"].(map[string]any)
	require.EqualValues(t, 4, conn["default_priority"])
	require.Equal(t, secTeamID, conn["default_team_id"])
	require.Equal(t, []any{"short-link", "auto-filed"}, conn["default_labels"])
	st, body = e.call(http.MethodPatch, base, tok, map[string]any{"labels": []string{}})
	require.Equal(t, http.StatusOK, st, body)
	require.Equal(t, []any{}, body["connection"].(map[string]any)["default_labels"])
	for _, bad := range []map[string]any{{"default_priority": 7}, {"default_team_id": "NOPE"}, {}} {
		st, body = e.do(http.DefaultClient, http.MethodPatch, base, tok, bad)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, st, "%v: %v", bad, body)
	}
	_, body = e.call(http.MethodGet, base, tok, nil)
	conn = body["connection"].(map[string]any)
	require.EqualValues(t, 4, conn["default_priority"], "a refused change changes nothing")
	require.Equal(t, secTeamID, conn["default_team_id"])

	// A public default team needs no webhook of its own: the private team's goes, and comes back with the team.
	st, body = e.call(http.MethodPatch, base, tok, map[string]any{"default_team_id": e.sd.Plain.Key})
	require.Equal(t, http.StatusOK, st, body)
	require.Len(t, body["team_webhooks"].(map[string]any)["deleted"], 1)
	requireFakeHooks(t, e, map[string]bool{"": true})
	st, body = e.call(http.MethodPatch, base, tok, map[string]any{"default_team_id": secTeamID})
	require.Equal(t, http.StatusOK, st, body)
	requireFakeHooks(t, e, map[string]bool{"": true, secTeamID: true})

	// A routing rule into the private team keeps its webhook when the default team moves away again.
	st, body = e.call(http.MethodPut, "/v1/workspaces/"+ws.Slug+"/routing-rules", tok, map[string]any{"rules": []any{
		map[string]any{"name": "security", "tag_glob": "sec-*", "team_id": "SEC"}}})
	require.Equal(t, http.StatusOK, st, body)
	st, body = e.call(http.MethodPatch, base, tok, map[string]any{"default_team_id": e.sd.Plain.ID})
	require.Equal(t, http.StatusOK, st, body)
	requireFakeHooks(t, e, map[string]bool{"": true, secTeamID: true})

	// A question may name its own team: a second private team gets its webhook when the first question goes there,
	// and keeps it while questions live there.
	e.fake.AddTeam(opsTeamID, "OPS", "Operations", false, true, 4)
	st, body = e.call(http.MethodPost, "/v1/workspaces/"+ws.Slug+"/questions", tok, map[string]any{"title": "Pager rota?",
		"body": "?", "asker_email": "alice@example.com", "team_id": "OPS"})
	require.Equal(t, http.StatusCreated, st, body)
	requireFakeHooks(t, e, map[string]bool{"": true, secTeamID: true, opsTeamID: true})
	st, body = e.call(http.MethodPatch, base, tok, map[string]any{"default_team_id": e.sd.Triage.Key})
	require.Equal(t, http.StatusOK, st, body)
	requireFakeHooks(t, e, map[string]bool{"": true, secTeamID: true, opsTeamID: true})
	st, body = e.call(http.MethodPost, "/v1/workspaces/"+ws.Slug+"/questions", tok, map[string]any{"title": "Public one",
		"body": "?", "asker_email": "alice@example.com", "team_id": e.sd.Plain.Key})
	require.Equal(t, http.StatusCreated, st, body)
	requireFakeHooks(t, e, map[string]bool{"": true, secTeamID: true, opsTeamID: true})

	st, body = e.call(http.MethodGet, base+"/webhooks", tok, nil)
	require.Equal(t, http.StatusOK, st, body)
	scopes := map[string]string{}
	for _, h := range body["webhooks"].([]any) {
		m := h.(map[string]any)
		scopes[m["scope"].(string)] = m["health"].(string)
		if m["scope"] == "team" {
			require.Contains(t, []any{"SEC", "OPS"}, m["team_key"])
			require.Equal(t, true, m["team_private"])
		}
	}
	require.Equal(t, map[string]string{"all_public_teams": "silent", "team": "silent"}, scopes, "both enabled, nothing delivered yet")
}

// requireFakeHooks checks the fake Linear holds exactly one enabled webhook per team in want ("" for all public
// teams).
func requireFakeHooks(t *testing.T, e *accessEnv, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for _, h := range e.fake.Webhooks() {
		require.False(t, got[h.TeamID], "one webhook per scope")
		require.Equal(t, h.TeamID == "", h.AllPublicTeams)
		got[h.TeamID] = true
	}
	require.Equal(t, want, got)
}

// TestPrivateTeamQuestionSyncsBothWays: the workspace files questions into a private team. Linear's webhook for all
// public teams never delivers that team's events (the fake behaves so), so only the team-scoped webhook linsync
// registered at connect brings a human's status change and comment back, within seconds; the webhooks view shows
// it delivering.
func TestPrivateTeamQuestionSyncsBothWays(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{worker: true, questions: true})
	e.fake.AddTeam(secTeamID, "SEC", "Security", true, true, 3)
	_, tok := e.workspace("acme")
	st, body := e.call(http.MethodPost, "/v1/workspaces/acme/integrations/linear/connect", tok,
		map[string]any{"api_key": e.sd.APIKey, "default_team_id": "SEC"})
	require.Equal(t, http.StatusOK, st, body)
	teamHook := body["team_webhooks"].(map[string]any)["created"].([]any)[0].(map[string]any)["linear_webhook_id"].(string)

	st, body = e.call(http.MethodPost, "/v1/workspaces/acme/questions", tok, map[string]any{"title": "Who rotated the key?",
		"body": "Audit question.", "asker_email": "alice@example.com", "external_id": "sec-1"})
	require.Equal(t, http.StatusCreated, st, body)
	qid := body["question"].(map[string]any)["id"].(string)
	var identifier string
	require.Eventually(t, func() bool {
		_, body = e.call(http.MethodGet, "/v1/workspaces/acme/questions/"+qid, tok, nil)
		l, _ := body["question"].(map[string]any)["linear"].(map[string]any)
		identifier, _ = l["identifier"].(string)
		return identifier != ""
	}, 20*time.Second, 50*time.Millisecond)
	require.Regexp(t, `^SEC-\d+$`, identifier)

	alice := e.fake.Human(e.sd.Alice.Email)
	require.NoError(t, alice.SetState(identifier, "started"))
	_, err := alice.Comment(identifier, "Rotated by the platform team.")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, body = e.call(http.MethodGet, "/v1/workspaces/acme/questions/"+qid, tok, nil)
		return body["question"].(map[string]any)["status"] == "in_progress"
	}, 10*time.Second, 50*time.Millisecond, "the status change in the private team came back")
	require.Eventually(t, func() bool {
		_, body = e.call(http.MethodGet, "/v1/workspaces/acme/questions/"+qid+"/replies", tok, nil)
		for _, r := range body["replies"].([]any) {
			if r.(map[string]any)["body"] == "Rotated by the platform team." {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the comment in the private team came back as a reply")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.fake.Flush(ctx))
	for _, d := range e.fake.Deliveries() {
		require.Equal(t, teamHook, d.WebhookID, "every delivery of the private team came through its own webhook")
	}
	require.Eventually(t, func() bool {
		_, body = e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/webhooks", tok, nil)
		for _, h := range body["webhooks"].([]any) {
			m := h.(map[string]any)
			if m["linear_webhook_id"] == teamHook {
				return m["health"] == "ok" && m["last_delivery_at"] != nil
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the team webhook shows as delivering: %v", body)
}
