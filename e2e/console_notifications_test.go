package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linsynctest"
)

// completedIssueDelivery is Linear's real Issue update (linear/testdata/payloads), moved to a completed state: the
// delivery the "issue-completed" template matches.
func completedIssueDelivery(t *testing.T, orgID string) []byte {
	t.Helper()
	raw, err := os.ReadFile(linsynctest.LinearTestdata(t, "payloads", "zulip_issue_update_title_2023.json"))
	require.NoError(t, err)
	var p map[string]any
	require.NoError(t, json.Unmarshal(raw, &p))
	data := p["data"].(map[string]any)
	data["identifier"], data["title"] = "WEB-44", "Checkout outage postmortem"
	data["state"] = map[string]any{"id": "5f0e7b2a-0d7e-4a8c-9d61-2f1b7c9e0a11", "color": "#5e6ad2", "name": "Done", "type": "completed"}
	data["stateId"] = "5f0e7b2a-0d7e-4a8c-9d61-2f1b7c9e0a11"
	p["updatedFrom"] = map[string]any{"updatedAt": "2023-04-11T10:13:05.980Z", "stateId": "a2530cac-36a0-4b6d-9af0-6357784035d4"}
	p["organizationId"] = orgID
	body, err := json.Marshal(p)
	require.NoError(t, err)
	return body
}

// TestConsoleNotificationsTargetRuleSimulateAndTest: add a signed-webhook target and see its signing secret once,
// add a rule from the "issue-completed" template, see a rule without targets refused by field, simulate a
// completed-issue delivery and see the rule fire with the message the API renders, send a test message and see the
// receiver get exactly one signed request; disable the rule and it no longer fires.
func TestConsoleNotificationsTargetRuleSimulateAndTest(t *testing.T) {
	s := newStack(t, stackOptions{cfg: api.Config{AllowPrivateNotifications: true}, workspace: "notifyco",
		workspaceName: "Notifyco", webhook: webhookStored, connect: &stackConnection{orgName: "Fake Org"},
		tokens: []stackToken{{"console-admin", []string{linsync.ScopeAdmin}}}})
	admin := s.tokens["console-admin"]
	hook := newReceiver(t)

	b := newBrowser(t, s)
	b.signIn("notifyco", admin)
	b.do(chromedp.Click(chromedp.CSS(`nav a[href="/console/notifications"]`)), chromedp.WaitVisible(chromedp.CSS("#target-form")))

	// A target: the signed webhook's signing secret is shown in the answer that created it, and never again.
	b.do(chromedp.SendKeys(chromedp.CSS("#t-name"), "pager"),
		chromedp.SetValue(chromedp.CSS("#t-kind"), linsync.NotifyWebhook),
		chromedp.SendKeys(chromedp.CSS("#t-url"), hook.URL+"/linsync"),
		chromedp.Click(chromedp.CSS("#add-target")))
	b.waitText("#new-secret", "copy it now")
	secret := evalIn[string](b, `Promise.resolve(document.querySelector("#secret-value").value)`)
	require.True(t, strings.HasPrefix(secret, "whsec_"), secret)
	row := b.text("#targets tbody tr")
	require.Contains(t, row, "pager")
	require.Contains(t, row, "signed webhook")
	require.Contains(t, row, "…sync", "the URL by its last 4 only")
	require.NotContains(t, row, hook.URL)
	targetID := strings.TrimPrefix(evalIn[string](b, `Promise.resolve(document.querySelector("#targets tbody tr").id)`), "target-")
	b.do(chromedp.Navigate(b.base+"/console/notifications"), chromedp.WaitVisible(chromedp.CSS("#target-form")))
	html, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	require.NotContains(t, html, secret, "the secret is shown once")
	require.NotContains(t, html, hook.URL, "the URL is kept sealed")

	// A rule from scratch without a target is refused, the field named beside the form.
	b.do(chromedp.SendKeys(chromedp.CSS("#n-name"), "no targets"), chromedp.SendKeys(chromedp.CSS("#n-actions"), "create"),
		chromedp.Click(chromedp.CSS("#save-nrule")))
	b.waitText("#rule-error", "target_ids")
	require.Equal(t, "true", evalIn[string](b, `Promise.resolve(document.querySelector("#n-targets").getAttribute("aria-invalid"))`))

	// A rule from the built-in "issue-completed" template, to the target.
	b.do(chromedp.SetValue(chromedp.CSS("#tpl-name"), "issue-completed"),
		chromedp.SetValue(chromedp.CSS("#tpl-targets"), targetID),
		chromedp.Click(chromedp.CSS("#add-from-template")))
	b.waitText("main", "Notification rule saved.")
	rules := b.text("#notify-rules")
	require.Contains(t, rules, "issue-completed")
	require.Contains(t, rules, "Issue update, where stateId changed, moving to a state of type completed")
	require.Contains(t, rules, "→ pager")

	// Simulated: the rule fires, with the message the API renders for this delivery.
	body := completedIssueDelivery(t, s.sd.OrganizationID)
	b.do(chromedp.SetValue(chromedp.CSS("#nsim-delivery"), string(body)), chromedp.Click(chromedp.CSS("#nsimulate")))
	b.waitText("#nsim-count", "1 of 1 enabled rules fire")
	resp, raw := s.request(http.DefaultClient, http.MethodPost, "/v1/workspaces/notifyco/notification-rules:simulate",
		map[string]any{"delivery": json.RawMessage(body)}, "Authorization", "Bearer "+admin, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	var sim struct {
		Rules []struct {
			RuleName string `json:"rule_name"`
			Messages []struct {
				Text string `json:"text"`
			} `json:"messages"`
		} `json:"rules"`
	}
	require.NoError(t, json.Unmarshal(raw, &sim))
	require.Len(t, sim.Rules, 1)
	require.Len(t, sim.Rules[0].Messages, 1)
	want := sim.Rules[0].Messages[0].Text
	require.Contains(t, want, "WEB-44")
	require.Contains(t, want, "Checkout outage postmortem")
	require.Contains(t, b.text("#nsim-result h3"), "issue-completed")
	require.Equal(t, want, b.text("#nsim-result pre.message"), "the page shows the API's rendered message as it is")
	require.Empty(t, hook.all(), "simulating sends nothing")

	// A test message: the receiver gets exactly one request, signed with the secret shown once.
	b.do(chromedp.Click(chromedp.CSS("#test-" + targetID)))
	b.waitText("#test-result-"+targetID, "delivered")
	require.Contains(t, b.text("#test-result-"+targetID), "HTTP 200")
	got := hook.all()
	require.Len(t, got, 1)
	require.Contains(t, got[0].body, "Test message from linsync to pager")
	require.Equal(t, linsync.SignStandardWebhook([]byte(secret), got[0].header.Get("webhook-id"), got[0].header.Get("webhook-timestamp"),
		[]byte(got[0].body)), got[0].header.Get("webhook-signature"))
	// Nothing inline for the CSP, and htmx ran from the binary.
	require.True(t, evalIn[bool](b, `Promise.resolve(typeof htmx === "object" &&
		document.querySelectorAll("style, [style], script:not([src])").length === 0)`))
	b.screenshot("console-notifications")
	b.do(chromedp.EmulateViewport(390, 844))
	require.True(t, evalIn[bool](b, `Promise.resolve(document.documentElement.scrollWidth <= window.innerWidth)`),
		"nothing runs off a phone's screen")
	b.screenshot("console-notifications-phone")
	b.do(chromedp.EmulateViewport(1280, 800))

	// Disabled, the rule no longer fires.
	b.do(chromedp.Click(chromedp.CSS(`#notify-rules button[aria-label^="Disable rule"]`)))
	b.waitText("main", "Notification rule disabled.")
	require.Contains(t, b.text("#notify-rules"), "disabled")
	b.do(chromedp.SetValue(chromedp.CSS("#nsim-delivery"), string(body)), chromedp.Click(chromedp.CSS("#nsimulate")))
	b.waitText("#nsim-count", "0 of 0 enabled rules fire")
	require.Len(t, hook.all(), 1, "still exactly one request")
}
