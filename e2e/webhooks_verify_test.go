package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
)

// total reads a counter without labels from the API's registry.
func (s *stack) total(name string) float64 {
	s.t.Helper()
	mfs, err := s.reg.Gather()
	require.NoError(s.t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// verifyCost is what checking one delivery cost: HMACs computed and webhook secrets decrypted.
type verifyCost struct{ hmacs, opened float64 }

func (s *stack) verifyCost() verifyCost {
	return verifyCost{s.total("linsync_webhook_hmacs_total"), s.total("linsync_webhook_secrets_opened_total")}
}

func (c verifyCost) since(before verifyCost) verifyCost {
	return verifyCost{c.hmacs - before.hmacs, c.opened - before.opened}
}

// bodyFrom is an Issue/create body as Linear's webhook webhookID sends it for org, stamped now.
func bodyFrom(org, webhookID string) []byte {
	var m map[string]any
	_ = json.Unmarshal(issueBody(org, time.Now()), &m)
	m["webhookId"] = webhookID
	b, _ := json.Marshal(m)
	return b
}

// TestWebhookVerifierChosenByWebhookID: with ten webhooks registered for one organization (each with its Linear id
// and a secret of its own), a delivery naming its webhook costs one HMAC and one decryption, on the organization's
// route and the workspace's; a body naming no stored webhook is checked against at most maxVerifyCandidates (3)
// webhooks stored without an id, and refused unchecked when there are more of them than that.
func TestWebhookVerifierChosenByWebhookID(t *testing.T) {
	t.Parallel()
	// Secrets are read afresh for every delivery, so each one's cost includes loading and decrypting what it checks.
	h := newHarness(t, api.Config{SecretCacheTTL: time.Millisecond}, nil, false)
	for i := range 10 {
		_, err := h.db.RegisterLinearWebhook(t.Context(), linsync.WebhookRegistration{WorkspaceID: h.wsID, OrganizationID: testOrg,
			TeamID: fmt.Sprintf("team-%d", i), LinearWebhookID: fmt.Sprintf("lwh-%d", i), Secret: fmt.Sprintf("secret-%d", i)})
		require.NoError(t, err)
	}
	post := func(path, webhookID, secret string) (int, verifyCost) {
		t.Helper()
		d := h.signedAt(path, bodyFrom(testOrg, webhookID))
		d.signature = linear.Sign([]byte(secret), d.body)
		before := h.verifyCost()
		status, resp := h.post(d)
		if status == http.StatusOK {
			require.Equal(t, "accepted", resp["status"])
		}
		return status, h.verifyCost().since(before)
	}

	for _, path := range []string{"/webhooks/linear", "/webhooks/linear/" + h.ws} {
		for _, i := range []int{7, 0, 9} {
			status, cost := post(path, fmt.Sprintf("lwh-%d", i), fmt.Sprintf("secret-%d", i))
			require.Equal(t, http.StatusOK, status, "%s lwh-%d", path, i)
			require.Equal(t, 1.0, cost.hmacs, "%s: one HMAC for a delivery naming its webhook", path)
			require.LessOrEqual(t, cost.opened, 1.0, "%s: at most its own secret decrypted", path)
		}
		// Signed with another stored webhook's secret: refused, still without trying the others.
		status, cost := post(path, "lwh-3", "secret-4")
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, 1.0, cost.hmacs, "%s: the named webhook only", path)
	}

	// The body names no stored webhook: the one stored without an id (the harness's) is tried, and only it.
	status, cost := post("/webhooks/linear", "lwh-unknown", testSecret)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 1.0, cost.hmacs)

	// Three more without an id: four candidates is more than the bound, so none is tried.
	for i := range 3 {
		_, err := h.db.RegisterLinearWebhook(t.Context(), linsync.WebhookRegistration{WorkspaceID: h.wsID, OrganizationID: testOrg,
			Secret: fmt.Sprintf("unnamed-%d", i)})
		require.NoError(t, err)
	}
	status, cost = post("/webhooks/linear", "lwh-unknown", testSecret)
	require.Equal(t, http.StatusUnauthorized, status, "four unnamed webhooks: an unnamed delivery is refused")
	require.Equal(t, verifyCost{}, cost, "unchecked: nothing decrypted, no HMAC")
	status, cost = post("/webhooks/linear", "lwh-5", "secret-5")
	require.Equal(t, http.StatusOK, status, "a delivery naming its webhook still verifies")
	require.Equal(t, 1.0, cost.hmacs)
}

// TestWebhookAllowlistComesFirst: a sender outside the allowlist is refused before anything else, whatever it
// sends: no body read, no workspace looked up, no secret decrypted, no HMAC.
func TestWebhookAllowlistComesFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{AllowedSenders: pfx("10.1.2.3/32")}, nil, false)
	for name, bend := range map[string]func(d *delivery){
		"bad signature":     func(d *delivery) { d.signature = strings.Repeat("ab", 32) },
		"good signature":    func(d *delivery) {},
		"unknown workspace": func(d *delivery) { d.path = "/webhooks/linear/nope" },
		"known workspace":   func(d *delivery) { d.path = "/webhooks/linear/" + h.ws },
		"malformed JSON":    func(d *delivery) { d.body = []byte(`{"action":`) },
	} {
		d := h.signed(issueBody(testOrg, time.Now()))
		bend(&d)
		before := h.verifyCost()
		status, body := h.post(d)
		require.Equal(t, http.StatusForbidden, status, "%s: %v", name, body)
		require.Equal(t, "forbidden", errorCode(body), name)
		require.Equal(t, verifyCost{}, h.verifyCost().since(before), "%s: no secret decrypted, no HMAC", name)
		h.requireNotStarted(d.id)
	}
}

// TestWebhookAnswersDoNotRevealWorkspaces: an unknown workspace and a known one with a bad signature get the same
// status and body, and so do an unknown organization and a known one.
func TestWebhookAnswersDoNotRevealWorkspaces(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, false)
	answer := func(path, org, secret string) (int, map[string]any) {
		d := h.signedAt(path, issueBody(org, time.Now()))
		d.signature = linear.Sign([]byte(secret), d.body)
		return h.post(d)
	}
	unknownStatus, unknownBody := answer("/webhooks/linear/nope", testOrg, testSecret)
	knownStatus, knownBody := answer("/webhooks/linear/"+h.ws, testOrg, "not-the-secret")
	require.Equal(t, http.StatusUnauthorized, knownStatus)
	require.Equal(t, knownStatus, unknownStatus)
	require.Equal(t, knownBody, unknownBody)
	require.Equal(t, "invalid webhook signature", knownBody["error"].(map[string]any)["message"])

	other := uuid.NewString()
	unknownStatus, unknownBody = answer("/webhooks/linear", other, testSecret)
	knownStatus, knownBody = answer("/webhooks/linear", testOrg, "not-the-secret")
	require.Equal(t, http.StatusUnauthorized, knownStatus)
	require.Equal(t, knownStatus, unknownStatus)
	require.Equal(t, knownBody, unknownBody)
}
