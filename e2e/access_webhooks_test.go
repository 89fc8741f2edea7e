package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

// TestManagedRotationWithLostAnswerKeepsBothSecrets: Linear applies a managed webhook's new secret and its answer is
// lost. linsync answers 503 and accepts deliveries signed with the old secret and with the new one (the fake's own,
// signed with the new, among them); rotating again sends Linear the same pending secret, not a third, and promotes
// it, the old one staying accepted for the grace window.
func TestManagedRotationWithLostAnswerKeepsBothSecrets(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{worker: true})
	ws, tok := e.workspace("acme")
	id := e.connectAPIKey(ws, tok)["webhook"].(map[string]any)["id"].(string)
	lh := e.fake.Webhooks()[0]
	old, org := lh.Secret, e.sd.OrganizationID
	rotate := "/v1/workspaces/acme/integrations/linear/webhooks/" + id + "/rotate"
	accepted := func(secret string) bool {
		return e.postSigned("/webhooks/linear/acme", bodyFrom(org, lh.ID), secret) == http.StatusOK
	}

	e.fake.LoseAnswers("WebhookUpdate", 1)
	status, body := e.call(http.MethodPost, rotate, tok, nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "Linear's answer was lost: %v", body)
	pending := e.fake.Webhooks()[0].Secret
	require.NotEqual(t, old, pending, "Linear applied the new secret before its answer was lost")
	require.True(t, accepted(old), "the old secret is still accepted")
	require.True(t, accepted(pending), "the new secret, which Linear signs with now, is accepted")

	_, err := e.fake.Human(e.sd.Alice.Email).CreateIssue(e.sd.Plain.ID, "While the rotation is pending")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.fake.Flush(ctx))
	for _, d := range e.fake.Deliveries() {
		require.Equal(t, http.StatusOK, d.Status, "Linear's delivery signed with the pending secret verifies: %s", d.Err)
	}
	status, list := e.call(http.MethodGet, "/v1/workspaces/acme/integrations/linear/webhooks", tok, nil)
	require.Equal(t, http.StatusOK, status)
	listed := list["webhooks"].([]any)[0].(map[string]any)
	require.Equal(t, true, listed["rotation_pending"])
	require.Equal(t, "…"+old[len(old)-4:], listed["secret_last4"], "the old secret is still the current one")

	status, body = e.call(http.MethodPost, rotate, tok, nil)
	require.Equal(t, http.StatusOK, status, "the retry completes the rotation: %v", body)
	require.Equal(t, pending, e.fake.Webhooks()[0].Secret, "the retry sent the pending secret rather than a third")
	hook := body["webhook"].(map[string]any)
	require.Equal(t, "…"+pending[len(pending)-4:], hook["secret_last4"])
	require.Nil(t, hook["rotation_pending"])
	require.NotEmpty(t, hook["previous_secret_expires_at"])
	require.True(t, accepted(pending))
	require.True(t, accepted(old), "the old secret stays accepted for the grace window")
	require.Equal(t, 2, e.fake.CountRequests("WebhookUpdate"))
}

// TestManagedWebhookCreatedOncePerScope: asking for a managed webhook where the scope has one returns it (200, the
// same id) and creates nothing in Linear, also when several requests race for a new scope: one creates (201), the
// others get its webhook.
func TestManagedWebhookCreatedOncePerScope(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{})
	ws, tok := e.workspace("acme")
	first := e.connectAPIKey(ws, tok)["webhook"].(map[string]any)["id"].(string)
	path := "/v1/workspaces/acme/integrations/linear/webhooks"

	status, body := e.call(http.MethodPost, path, tok, map[string]any{})
	require.Equal(t, http.StatusOK, status, "body: %v", body)
	require.Equal(t, first, body["webhook"].(map[string]any)["id"])
	require.Len(t, e.fake.Webhooks(), 1, "no second webhook for all public teams")

	type answer struct {
		status int
		id     string
		err    error
	}
	const n = 6
	answers := make(chan answer, n)
	var start sync.WaitGroup
	start.Add(1)
	for range n {
		go func() {
			start.Wait()
			raw, _ := json.Marshal(map[string]any{"team_id": e.sd.Plain.ID})
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(raw))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			var out struct {
				Webhook struct {
					ID string `json:"id"`
				} `json:"webhook"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			answers <- answer{status: resp.StatusCode, id: out.Webhook.ID, err: err}
		}()
	}
	start.Done()
	created, ids := 0, map[string]bool{}
	for range n {
		a := <-answers
		require.NoError(t, a.err)
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, a.status)
		if a.status == http.StatusCreated {
			created++
		}
		ids[a.id] = true
	}
	require.Equal(t, 1, created, "one request created the team's webhook")
	require.Len(t, ids, 1, "every request got the same webhook")
	require.Len(t, e.fake.Webhooks(), 2, "one webhook for all public teams, one for the team")
	require.Equal(t, 2, e.fake.CountRequests("WebhookCreate"))
	hooks, err := e.db.ListLinearWebhooks(t.Context(), ws.ID)
	require.NoError(t, err)
	require.Len(t, hooks, 2)
}

// TestWebhookRegistrationBadInput: the registration rows of DESIGN.md's bad-input table. Each refusal names its field
// (or the limit) and stores nothing.
func TestWebhookRegistrationBadInput(t *testing.T) {
	t.Parallel()
	e := newAccessEnv(t, accessOptions{noPublicURL: true})
	lone, loneTok := e.workspace("lone")
	ws, tok := e.workspace("acme")
	e.connectAPIKey(ws, tok)
	register := func(slug, token string, body map[string]any) (int, map[string]any) {
		return e.call(http.MethodPost, "/v1/workspaces/"+slug+"/integrations/linear/webhooks", token, body)
	}
	status, body := register("acme", tok, map[string]any{"secret": "lin_wh_first", "linear_webhook_id": "lwh-first"})
	require.Equal(t, http.StatusCreated, status, "body: %v", body)

	cases := []struct {
		name, slug, token string
		body              map[string]any
		status            int
		code, field, text string
	}{
		{"no connection, an organization typed in", "lone", loneTok,
			map[string]any{"secret": "lin_wh_x", "organization_id": e.sd.OrganizationID}, 409, "conflict", "organization_id", "connect the workspace to Linear first"},
		{"no connection, no organization", "lone", loneTok,
			map[string]any{"secret": "lin_wh_x"}, 409, "conflict", "organization_id", "connect the workspace to Linear first"},
		{"another organization than the connected one", "acme", tok,
			map[string]any{"secret": "lin_wh_x", "organization_id": "0b7c1a52-0000-4000-8000-00000000beef"}, 422, "unprocessable", "organization_id", "connected Linear organization"},
		{"a Linear webhook id registered already", "acme", tok,
			map[string]any{"secret": "lin_wh_x", "linear_webhook_id": "lwh-first"}, 409, "conflict", "linear_webhook_id", "lwh-first"},
	}
	for _, tc := range cases {
		before := webhookIDs(t, e, lone, ws)
		status, body := register(tc.slug, tc.token, tc.body)
		require.Equal(t, tc.status, status, "%s: %v", tc.name, body)
		er := body["error"].(map[string]any)
		require.Equal(t, tc.code, er["code"], tc.name)
		require.Equal(t, tc.field, er["field"], tc.name)
		require.Contains(t, er["message"], tc.text, tc.name)
		require.Equal(t, before, webhookIDs(t, e, lone, ws), "%s: nothing stored", tc.name)
	}

	// The cap: a workspace registers at most MaxWebhooksPerWorkspace webhooks.
	hooks, err := e.db.ListLinearWebhooks(t.Context(), ws.ID)
	require.NoError(t, err)
	for i := len(hooks); i < linsync.MaxWebhooksPerWorkspace; i++ {
		status, body := register("acme", tok, map[string]any{"secret": fmt.Sprintf("lin_wh_%d", i)})
		require.Equal(t, http.StatusCreated, status, "body: %v", body)
	}
	before := webhookIDs(t, e, ws)
	status, body = register("acme", tok, map[string]any{"secret": "lin_wh_one_too_many"})
	require.Equal(t, http.StatusUnprocessableEntity, status, "body: %v", body)
	require.Contains(t, body["error"].(map[string]any)["message"], fmt.Sprintf("at most %d", linsync.MaxWebhooksPerWorkspace))
	require.Equal(t, before, webhookIDs(t, e, ws))
}

// webhookIDs lists the ids of the webhooks the workspaces have registered, sorted by workspace and age.
func webhookIDs(t *testing.T, e *accessEnv, wss ...*linsync.Workspace) string {
	t.Helper()
	var ids []string
	for _, ws := range wss {
		hooks, err := e.db.ListLinearWebhooks(t.Context(), ws.ID)
		require.NoError(t, err)
		for _, h := range hooks {
			ids = append(ids, h.ID)
		}
	}
	return strings.Join(ids, ",")
}
