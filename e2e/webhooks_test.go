package e2e

import (
	"bytes"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

func TestWebhookBadInputStartsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, false)
	now := time.Now()
	huge := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 1<<20)...)
	huge = append(huge, `"}`...)

	cases := []struct {
		name    string
		bend    func(d *delivery)
		status  int
		code    string
		field   string
		outcome string
	}{
		{"bad signature", func(d *delivery) { d.signature = strings.Repeat("ab", 32) }, 401, "unauthorized", "", "unauthorized"},
		{"missing signature", func(d *delivery) { d.signature = "" }, 401, "unauthorized", "", "unauthorized"},
		{"signature not hex", func(d *delivery) { d.signature = "not-hex" }, 401, "unauthorized", "", "unauthorized"},
		{"signed with another secret", func(d *delivery) { d.signature = linear.Sign([]byte("other"), d.body) }, 401, "unauthorized", "", "unauthorized"},
		{"body changed after signing", func(d *delivery) { d.body = bytes.Replace(d.body, []byte("Hello"), []byte("Hellp"), 1) }, 401, "unauthorized", "", "unauthorized"},
		// Linear's retries keep the first attempt's body: an unseen body is accepted for the whole retry horizon.
		{"stale but within the retry horizon, unseen", func(d *delivery) { *d = h.signed(issueBody(testOrg, now.Add(-6*time.Hour))) }, 200, "", "", "accepted"},
		{"stale beyond the retry horizon", func(d *delivery) {
			*d = h.signed(issueBody(testOrg, now.Add(-linsync.DefaultRetryHorizon-time.Minute)))
		}, 400, "expired", "", "expired"},
		{"future timestamp", func(d *delivery) { *d = h.signed(issueBody(testOrg, now.Add(2*time.Minute))) }, 400, "expired", "", "expired"},
		{"timestamp 300 years ahead", func(d *delivery) { *d = h.signed(issueBody(testOrg, now.AddDate(300, 0, 0))) }, 400, "expired", "", "expired"},
		{"missing timestamp", func(d *delivery) {
			*d = h.signed([]byte(`{"action":"create","type":"Issue","organizationId":"` + testOrg + `","data":{"id":"x","title":"t","priority":0}}`))
		}, 400, "expired", "", "expired"},
		{"body over 1 MiB", func(d *delivery) { *d = h.signed(huge) }, 413, "too_large", "", "too_large"},
		{"body over 1 MiB, chunked", func(d *delivery) { *d = h.signed(huge); d.chunked = true }, 413, "too_large", "", "too_large"},
		{"malformed JSON", func(d *delivery) { d.path += "/acme"; *d = h.signedAt(d.path, []byte(`{"action":`)) }, 400, "invalid", "", "invalid"},
		{"malformed JSON without workspace", func(d *delivery) { *d = h.signed([]byte(`{"action":`)) }, 400, "invalid", "", "invalid"},
		{"wrong shape", func(d *delivery) {
			*d = h.signed(bytes.Replace(issueBody(testOrg, now), []byte(`"priority":2`), []byte(`"priority":"high"`), 1))
		}, 422, "unprocessable", "data.priority", "unprocessable"},
		{"data missing", func(d *delivery) {
			*d = h.signed([]byte(`{"action":"create","type":"Issue","organizationId":"` + testOrg + `","webhookTimestamp":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`))
		}, 422, "unprocessable", "data", "unprocessable"},
		// An unknown workspace or organization is answered as a bad signature: the route does not tell which exist.
		{"unknown workspace", func(d *delivery) { d.path = "/webhooks/linear/nope" }, 401, "unauthorized", "", "unauthorized"},
		{"unknown workspace, bad signature", func(d *delivery) { d.path = "/webhooks/linear/nope"; d.signature = strings.Repeat("ab", 32) }, 401, "unauthorized", "", "unauthorized"},
		{"known workspace, bad signature", func(d *delivery) { d.path = "/webhooks/linear/acme"; d.signature = strings.Repeat("ab", 32) }, 401, "unauthorized", "", "unauthorized"},
		{"unknown organization", func(d *delivery) { *d = h.signed(issueBody("other-org", now)) }, 401, "unauthorized", "", "unauthorized"},
		{"no organization and no workspace", func(d *delivery) {
			*d = h.signed([]byte(`{"action":"create","type":"Issue","webhookTimestamp":` + strconv.FormatInt(now.UnixMilli(), 10) + `,"data":{"id":"x","title":"t","priority":0}}`))
		}, 401, "unauthorized", "", "unauthorized"},
		// The body's names are read before its signature is checked (they choose the secret): JSON that is not an
		// object is refused first, on either route.
		{"JSON not an object", func(d *delivery) { *d = h.signed([]byte(`["a"]`)) }, 400, "invalid", "", "invalid"},
		{"JSON not an object, unknown workspace", func(d *delivery) { *d = h.signedAt("/webhooks/linear/nope", []byte(`"x"`)) }, 400, "invalid", "", "invalid"},
		{"webhookId of a webhook not stored, signed by the stored one", func(d *delivery) {
			*d = h.signed(bytes.Replace(issueBody(testOrg, now), []byte(`"wh-1"`), []byte(`"wh-not-stored"`), 1))
		}, 200, "", "", "accepted"},
		{"missing delivery id", func(d *delivery) { d.id = "" }, 400, "invalid", "Linear-Delivery", "invalid"},
		{"delivery id not a uuid", func(d *delivery) { d.id = "123" }, 400, "invalid", "Linear-Delivery", "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := h.signed(issueBody(testOrg, now))
			tc.bend(&d)
			if tc.name == "missing delivery id" || tc.name == "delivery id not a uuid" {
				// nothing to look up in Temporal by a delivery id that is not one
			} else if d.id == "" {
				d.id = uuid.NewString()
			}
			before := h.webhookCount(tc.outcome)
			status, body := h.post(d)
			require.Equal(t, tc.status, status, "body: %v", body)
			if status == http.StatusOK {
				require.Equal(t, "accepted", body["status"])
				require.Equal(t, before+1, h.webhookCount(tc.outcome), "the acceptance is counted")
				h.waitStarted(d.id)
				return
			}
			require.Equal(t, tc.code, errorCode(body))
			if tc.field != "" {
				require.Equal(t, tc.field, body["error"].(map[string]any)["field"])
			}
			require.Equal(t, before+1, h.webhookCount(tc.outcome), "the rejection is counted")
			if _, err := uuid.Parse(d.id); err == nil {
				h.requireNotStarted(d.id)
			}
		})
	}
}

func (h *harness) signedAt(path string, body []byte) delivery {
	d := h.signed(body)
	d.path = path
	return d
}

// webhookCount reads linsync_webhook_requests_total{outcome} from the API's registry.
func (h *harness) webhookCount(outcome string) float64 {
	h.t.Helper()
	return h.counter("linsync_webhook_requests_total", "outcome", outcome)
}

func TestWebhookSenderAllowlist(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		cfg    api.Config
		xff    string
		status int
	}{
		{"allowed directly", api.Config{AllowedSenders: pfx("127.0.0.0/8")}, "", 200},
		{"not allowed", api.Config{AllowedSenders: pfx("10.1.2.3/32")}, "", 403},
		{"forwarded header from an untrusted proxy is ignored", api.Config{AllowedSenders: pfx("10.1.2.3/32")}, "10.1.2.3", 403},
		{"forwarded header from a trusted proxy is honoured", api.Config{AllowedSenders: pfx("10.1.2.3/32"), TrustedProxies: pfx("127.0.0.1/32")}, "10.1.2.3", 200},
		{"trusted proxy forwarding a stranger", api.Config{AllowedSenders: pfx("10.1.2.3/32"), TrustedProxies: pfx("127.0.0.1/32")}, "10.9.9.9", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.cfg, nil, false)
			d := h.signed(issueBody(testOrg, time.Now()))
			if tc.xff != "" {
				d.header = http.Header{"X-Forwarded-For": {tc.xff}}
			}
			status, body := h.post(d)
			require.Equal(t, tc.status, status, "body: %v", body)
			if status != 200 {
				require.Equal(t, "forbidden", errorCode(body))
				h.requireNotStarted(d.id)
			}
		})
	}
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var timestampField = regexp.MustCompile(`"webhookTimestamp"\s*:\s*[0-9.eE+]+`)

// restamp sets a real payload's webhookTimestamp to now, leaving every other byte as Linear sent it.
func restamp(t *testing.T, body []byte) []byte {
	t.Helper()
	require.Regexp(t, timestampField, string(body))
	return timestampField.ReplaceAll(body, []byte(`"webhookTimestamp": `+strconv.FormatInt(time.Now().UnixMilli(), 10)))
}

// TestSharedPayloadsRunAndRecordOnce posts every real Linear payload, and every schema-derived one, through the
// real ingress: each runs, is recorded once with its type, action and entity, and a redelivery is a duplicate.
func TestSharedPayloadsRunAndRecordOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, true)
	files, err := filepath.Glob(filepath.Join(linsynctest.LinearTestdata(t, "payloads"), "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 10)
	// And the types no real capture was found for (Reaction, Cycle, Attachment, Document, User, Customer), built
	// from the schema.
	derived, err := filepath.Glob(filepath.Join(linsynctest.LinearTestdata(t, "schema-payloads"), "*.json"))
	require.NoError(t, err)
	require.Len(t, derived, 6)
	files = append(files, derived...)
	// The payloads come from several Linear organizations; the workspace has a webhook for each, as it would if
	// it had connected them all (a webhook only speaks for its own organization).
	// Each is stored with its Linear webhook id where the organization's payloads name one webhook, as an admin
	// registering them would: a body naming no stored webhook and no organization (the redacted IssueSLA) is checked
	// against at most three webhooks stored without an id.
	ids := map[string]map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		hook, err := linear.DecodeWebhook(raw)
		require.NoError(t, err)
		if org := hook.OrganizationID; org != "" && org != testOrg {
			if ids[org] == nil {
				ids[org] = map[string]bool{}
			}
			ids[org][hook.WebhookID] = true
		}
	}
	for org, named := range ids {
		in := linsync.WebhookRegistration{WorkspaceID: h.wsID, OrganizationID: org, Secret: testSecret}
		if len(named) == 1 {
			for id := range named {
				in.LinearWebhookID = id
			}
		}
		_, err := h.db.RegisterLinearWebhook(t.Context(), in)
		require.NoError(t, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			body := restamp(t, raw)
			hook, err := linear.DecodeWebhook(body)
			require.NoError(t, err)

			d := h.signedAt("/webhooks/linear/"+h.ws, body)
			status, resp := h.post(d)
			require.Equal(t, 200, status, "body: %v", resp)
			require.Equal(t, "accepted", resp["status"])
			require.Equal(t, workflows.LinearDeliveryWorkflowID(h.wsID, d.id), resp["workflow_id"])
			runID := h.waitDone(d.id)

			rec, err := h.db.FindDelivery(t.Context(), h.wsID, d.id)
			require.NoError(t, err)
			require.Equal(t, hook.Type, rec.EventType)
			require.Equal(t, hook.Action, rec.Action)
			require.Equal(t, hook.EntityID(), rec.EntityID)
			require.Equal(t, h.wsID, rec.WorkspaceID)
			require.Equal(t, runID, rec.RunID)
			// Issue and Comment events reach the question handlers, which ignore (and say why) what no question
			// is linked to; every other modelled type is processed by the default route.
			require.Contains(t, []string{"processed", "ignored"}, rec.Outcome, rec.Detail)
			if rec.Outcome == "ignored" {
				require.NotEmpty(t, rec.Detail)
			}

			// Linear redelivers: same delivery id, re-stamped and re-signed.
			again := h.signedAt(d.path, restamp(t, raw))
			again.id = d.id
			status, resp = h.post(again)
			require.Equal(t, 200, status)
			require.Equal(t, "duplicate", resp["status"])
			require.Equal(t, runID, h.waitDone(d.id), "no second run")
			list, err := h.db.ListDeliveries(t.Context(), h.wsID, 1000)
			require.NoError(t, err)
			n := 0
			for _, r := range list {
				if r.DeliveryID == d.id {
					n++
				}
			}
			require.Equal(t, 1, n, "one row per delivery")

			// A captured body re-posted under a new Linear-Delivery (the header is not signed) is a duplicate by
			// its content: nothing starts.
			replayed := h.signedAt(d.path, body)
			replayed.id = uuid.NewString()
			status, resp = h.post(replayed)
			require.Equal(t, 200, status)
			require.Equal(t, "duplicate", resp["status"])
			h.requireNotStarted(replayed.id)
		})
	}
}

func TestWebhookMatchedByOrganizationAndUnknownTypeRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, true)
	body := []byte(`{"action":"create","type":"AgentSessionEvent","organizationId":"` + testOrg + `","webhookTimestamp":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `,"data":{"id":"sess-1"}}`)
	d := h.signed(body)
	status, resp := h.post(d)
	require.Equal(t, 200, status, "body: %v", resp)
	h.waitDone(d.id)
	rec, err := h.db.FindDelivery(t.Context(), h.wsID, d.id)
	require.NoError(t, err)
	require.Equal(t, "unknown_type", rec.Outcome)
	require.Equal(t, "AgentSessionEvent", rec.EventType)
	require.Equal(t, "sess-1", rec.EntityID)
}

func TestWebhookSecretRotationGrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{SecretCacheTTL: time.Second}, nil, false)
	_, err := h.db.RotateLinearWebhookSecret(t.Context(), h.wsID, h.hookID, "new-secret", time.Hour)
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond) // let the API's cached secrets age past the refresh floor

	newSigned := h.signed(issueBody(testOrg, time.Now()))
	newSigned.signature = linear.Sign([]byte("new-secret"), newSigned.body)
	status, resp := h.post(newSigned)
	require.Equal(t, 200, status, "the new secret is accepted at once: %v", resp)

	status, resp = h.post(h.signed(issueBody(testOrg, time.Now())))
	require.Equal(t, 200, status, "the previous secret is accepted during the grace window: %v", resp)

	_, err = h.db.RotateLinearWebhookSecret(t.Context(), h.wsID, h.hookID, "newer-secret", time.Millisecond)
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond)
	stale := h.signed(issueBody(testOrg, time.Now()))
	stale.signature = linear.Sign([]byte("new-secret"), stale.body)
	status, _ = h.post(stale)
	require.Equal(t, 401, status, "the previous secret is refused once its grace window has passed")
	status, _ = h.post(h.signed(issueBody(testOrg, time.Now())))
	require.Equal(t, 401, status, "a secret two rotations old is refused")
}

// TestOpsListenerKeepsMetricsOffThePublicOne: readiness and metrics (which name workspaces and carry per-tenant
// rate-limit state) answer on the operations listener only; the public API keeps a bare /healthz for load balancers.
func TestOpsListenerKeepsMetricsOffThePublicOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, false)
	status := func(base, path string) int {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		require.Equal(t, 200, status(h.ops.URL, path), "ops listener %s", path)
	}
	require.Equal(t, 404, status(h.srv.URL, "/metrics"), "/metrics is absent from the public listener")
	require.Equal(t, 404, status(h.srv.URL, "/readyz"), "/readyz is absent from the public listener")
	require.Equal(t, 200, status(h.srv.URL, "/healthz"), "a bare liveness answer stays for load balancers")
}

type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}

// TestWebhookOnlySpeaksForItsOrganization: a workspace's secret cannot sign for another Linear organization, on
// either route, so one tenant cannot act on another's data (e.g. an OAuthApp revocation). A body naming an
// organization is checked only against that organization's webhooks (401 when there are none), and one whose named
// webhook belongs to another organization is refused as not found.
func TestWebhookOnlySpeaksForItsOrganization(t *testing.T) {
	t.Parallel()
	h := newHarness(t, api.Config{}, nil, false)
	other := "0b7c1a52-0000-4000-8000-00000000beef"
	_, err := h.db.RegisterLinearWebhook(t.Context(), linsync.WebhookRegistration{WorkspaceID: h.wsID, OrganizationID: testOrg,
		LinearWebhookID: "lwh-own", Secret: "own-secret"})
	require.NoError(t, err)
	for _, path := range []string{"/webhooks/linear/" + h.ws, "/webhooks/linear"} {
		body := []byte(`{"type":"OAuthApp","action":"revoked","organizationId":"` + other + `","oauthClientId":"c1","webhookTimestamp":` +
			strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)
		d := h.signedAt(path, body)
		status, resp := h.post(d)
		require.Equal(t, http.StatusUnauthorized, status, "%s: %v", path, resp)
		h.requireNotStarted(d.id)
	}
	named := []byte(`{"type":"OAuthApp","action":"revoked","organizationId":"` + other + `","oauthClientId":"c1","webhookId":"lwh-own","webhookTimestamp":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)
	d := h.signedAt("/webhooks/linear/"+h.ws, named)
	d.signature = linear.Sign([]byte("own-secret"), named)
	status, resp := h.post(d)
	require.Equal(t, http.StatusNotFound, status, "signed by the named webhook, which speaks for another organization: %v", resp)
	h.requireNotStarted(d.id)
	// The same body for the workspace's own organization is accepted.
	body := []byte(`{"type":"OAuthApp","action":"revoked","organizationId":"` + testOrg + `","oauthClientId":"c1","webhookTimestamp":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)
	status, resp = h.post(h.signedAt("/webhooks/linear/"+h.ws, body))
	require.Equal(t, http.StatusOK, status, "%v", resp)
}
