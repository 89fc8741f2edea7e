package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

// The console's tests drive Debian's chromium, headless, against the real stack with the fake Linear. Chromium is
// required: without it these tests fail, they do not skip (.ci/run installs it).

// browser is one headless Chromium (a process of its own, so no cookie is shared between tests) on a stack.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// chromiumPath finds the browser: LINSYNC_CHROMIUM, or chromium on the PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LINSYNC_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	require.NoError(t, err, "the console's browser tests need Debian's chromium (apt-get install -y chromium) or LINSYNC_CHROMIUM")
	return p
}

func newBrowser(t *testing.T, s *stack) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // headless as root
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	b := &browser{t: t, ctx: ctx, base: s.srv.URL}
	// A failing test leaves the page it failed on (its HTML in the log, a screenshot beside the others).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if html, err := chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS("body"))); err == nil {
			t.Logf("page at failure:\n%s", html)
		}
		b.screenshot("failure-" + strings.ReplaceAll(t.Name(), "/", "-"))
	})
	return b
}

// do runs steps within a minute.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, "text of %s", sel)
	return v
}

// eval evaluates JavaScript in the page, awaiting a promise.
func evalIn[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, "evaluate %s", js)
	return v
}

// waitText waits until the element's text contains want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	require.Eventually(b.t, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		return err == nil && strings.Contains(v, want)
	}, 30*time.Second, 200*time.Millisecond, "%s never showed %q", sel, want)
}

// signIn signs in through the form, as a person would.
func (b *browser) signIn(workspace, token string) {
	b.t.Helper()
	b.do(
		chromedp.Navigate(b.base+"/console"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SendKeys(chromedp.CSS("#workspace"), workspace),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#signin-form")),
	)
	// The form's navigation ends on a signed-in page (its sign-out button) or on the refusal.
	require.Eventually(b.t, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" &&
			!!(document.querySelector("form.signout") || document.querySelector("#page-error"))`))
		return err == nil && done
	}, 30*time.Second, 100*time.Millisecond, "sign in")
}

// screenshot saves a full-page PNG under $LINSYNC_SCREENSHOTS (kept) or the test's temporary folder.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	dir := os.Getenv("LINSYNC_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	require.NoError(b.t, os.MkdirAll(dir, 0o755))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	path := filepath.Join(dir, name+".png")
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
	return path
}

// consoleStack is a workspace with an admin token on the real stack and the fake Linear, connected or not.
func consoleStack(t *testing.T, slug string, connect bool, w stackWorker) (*stack, string) {
	t.Helper()
	o := stackOptions{workspace: slug, workspaceName: strings.ToUpper(slug[:1]) + slug[1:], worker: w,
		tokens: []stackToken{{"console-admin", []string{linsync.ScopeAdmin}}}}
	if connect {
		o.webhook = webhookStored
		o.connect = &stackConnection{orgName: "Fake Org", labels: []string{"Customer"}}
	}
	s := newStack(t, o)
	return s, s.tokens["console-admin"]
}

// TestConsoleConnectByKeyThroughTeamPicker: sign in, paste the key, pick the team from Linear's list with a
// priority and labels, and see the card connected; the API shows the same connection.
func TestConsoleConnectByKeyThroughTeamPicker(t *testing.T) {
	s, admin := consoleStack(t, "cardco", false, stackWorker{})
	b := newBrowser(t, s)
	b.signIn("cardco", admin)
	b.waitText("#conn-status", "not connected")

	// A key Linear refuses is refused, and nothing is stored.
	b.do(chromedp.SendKeys(chromedp.CSS("#api_key"), "lin_api_not_a_key_000000000000000000000000"),
		chromedp.Click(chromedp.CSS("#validate")))
	b.waitText("#page-error", "Linear rejected the credential")

	b.do(chromedp.SendKeys(chromedp.CSS("#api_key"), s.sd.APIKey),
		chromedp.Click(chromedp.CSS("#validate")),
		chromedp.WaitVisible(chromedp.CSS("#connect-form")))
	require.Contains(t, b.text("#default_team_id"), s.sd.Plain.Key, "the picker lists Linear's teams")
	html, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	require.NotContains(t, html, s.sd.APIKey, "the page carries the key only sealed")
	require.Contains(t, b.text("#default_team_id"), s.sd.Triage.Key)
	b.do(chromedp.SetValue(chromedp.CSS("#default_team_id"), s.sd.Plain.ID),
		chromedp.SetValue(chromedp.CSS("#default_priority"), "2"),
		chromedp.SendKeys(chromedp.CSS("#labels"), "linsync, auto-filed"),
		chromedp.Click(chromedp.CSS("#connect")))
	b.waitText("#conn-status", "connected")
	require.Equal(t, "…"+s.sd.APIKey[len(s.sd.APIKey)-4:], b.text("#key-last4"), "only the key's last 4")
	require.Contains(t, b.text("main"), "Linear is connected.")
	b.screenshot("console-card")
	// Readable on a phone too.
	b.do(chromedp.EmulateViewport(390, 844))
	b.screenshot("console-card-phone")
	b.do(chromedp.EmulateViewport(1280, 800))

	// The API holds exactly what the card shows.
	conn, err := s.db.FindConnection(t.Context(), s.wsID)
	require.NoError(t, err)
	require.Equal(t, linsync.ConnectionActive, conn.Status)
	resp, body := s.request(http.DefaultClient, http.MethodGet, "/v1/workspaces/cardco/integrations/linear", nil, "Authorization", "Bearer "+admin)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	for _, want := range []string{`"default_team_id":"` + s.sd.Plain.ID + `"`, `"default_priority":2`,
		`"default_labels":["linsync","auto-filed"]`, `"status":"active"`} {
		require.Contains(t, string(body), want)
	}
	require.Contains(t, b.text("#integration-card"), conn.OrganizationName)
}

// TestConsoleRoutingRuleWinsInTheSimulator: add a rule in the editor, simulate an event it matches, see it win.
func TestConsoleRoutingRuleWinsInTheSimulator(t *testing.T) {
	s, admin := consoleStack(t, "routeco", true, stackWorker{})
	b := newBrowser(t, s)
	b.signIn("routeco", admin)
	b.do(chromedp.Navigate(b.base+"/console/routing"), chromedp.WaitVisible(chromedp.CSS("#rule-form")))
	b.do(chromedp.SendKeys(chromedp.CSS("#r-name"), "paid links"),
		chromedp.SendKeys(chromedp.CSS("#r-glob"), "paid*"),
		chromedp.SetValue(chromedp.CSS("#r-team"), s.sd.Plain.ID),
		chromedp.SendKeys(chromedp.CSS("#r-labels"), "revenue"),
		chromedp.SetValue(chromedp.CSS("#r-priority"), "1"),
		chromedp.Click(chromedp.CSS("#save-rule")))
	b.waitText("#rules", "paid links")
	b.do(chromedp.SendKeys(chromedp.CSS("#r-name"), "everything else"),
		chromedp.Click(chromedp.CSS("#r-default")),
		chromedp.Click(chromedp.CSS("#save-rule")))
	b.waitText("#rules", "everything else")

	rules, _, err := s.db.RoutingRules(t.Context(), s.wsID)
	require.NoError(t, err)
	require.Len(t, rules, 2)
	require.Equal(t, "paid links", rules[0].Name)
	require.Equal(t, s.sd.Plain.ID, rules[0].TeamID)
	require.True(t, rules[1].Default)

	// The first sample is a paid link: the rule wins, with its team, labels and priority.
	b.do(chromedp.Click(chromedp.CSS("#simulate")))
	b.waitText("#sim-winner", "paid links")
	res := b.text("#sim-result")
	require.Contains(t, res, s.sd.Plain.Key)
	require.Contains(t, res, "revenue")
	require.Contains(t, res, "Urgent")
	// htmx ran from the binary under the CSP (script-src 'self'), and nothing on the page needs an inline style.
	require.True(t, evalIn[bool](b, `Promise.resolve(typeof htmx === "object" && htmx.version.startsWith("2.") &&
		document.querySelectorAll("style, [style], script:not([src])").length === 0)`))
	b.screenshot("console-routing")

	// An event the rule does not match falls to the default rule.
	b.do(chromedp.SetValue(chromedp.CSS("#sim-event"),
		`{"event":"domain.takeover_detected","domain":"promo.example.com","detail":"dangling CNAME"}`),
		chromedp.Click(chromedp.CSS("#simulate")))
	b.waitText("#sim-winner", "everything else")
}

// TestConsoleFailedEventReplayedOnce: an event fails for good (Linear forbids the key); the console lists it with
// its class, attempts and Temporal link, shows the dry run, replays it with one click, and Linear gets one issue.
func TestConsoleFailedEventReplayedOnce(t *testing.T) {
	h := newFailureHarness(t, fOptions{forbiddenKey: true})
	wf := h.postEvent(takeoverEvent("tk-console", "console.example.com"))
	h.waitFailed(wf)
	ds := h.waitDeadLetters(workflows.TypeFileEvent, 1)
	id := ds[0]["id"].(string)
	h.fake.AllowKey(h.apiKey)

	b := newBrowser(t, h.stack)
	b.signIn(h.ws, h.admin)
	b.do(chromedp.Navigate(b.base+"/console/failed"), chromedp.WaitVisible(chromedp.CSS("#failed-events")))
	row := b.text(`#failed-events tr[data-id="` + id + `"]`)
	require.Contains(t, row, workflows.TypeFileEvent)
	require.Contains(t, row, ds[0]["error_class"].(string))
	href, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS(`#failed-events tr[data-id="`+id+`"] a[rel]`), "href"))
	require.NoError(t, err)
	require.Equal(t, ds[0]["temporal_ui_url"], href.Value)
	b.screenshot("console-failed-events")

	b.do(chromedp.Click(chromedp.CSS("#replay-" + id)))
	b.waitText("#dry-run", "would replay")
	require.Contains(t, b.text("#dry-run"), "issueCreate", "the diff: what the replay writes to Linear, field by field")
	require.Empty(t, h.fakeIssues(), "showing the dry run changes nothing")
	b.screenshot("console-failed-dry-run")
	b.do(chromedp.Click(chromedp.CSS("#replay-now")))
	b.waitText("#replay-outcome", "started")
	require.Eventually(t, func() bool { return len(h.fakeIssues()) == 1 }, 30*time.Second, 200*time.Millisecond)
	b.waitText(`#failed-events tr[data-id="`+id+`"]`, "replayed")
	require.Len(t, h.fakeIssues(), 1, "exactly one issue in Linear")
	require.Equal(t, 1, h.fake.CountRequests("IssueCreate"))

	// Sync status lists the filed issue with its link into Linear.
	identifier := h.fakeIssues()[0]["identifier"].(string)
	b.do(chromedp.Navigate(b.base+"/console/sync"), chromedp.WaitVisible(chromedp.CSS("#filed-issues")))
	b.waitText("#filed-issues", identifier)
	link, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS("#filed-issues a"), "href"))
	require.NoError(t, err)
	require.Contains(t, link.Value, identifier)
	b.screenshot("console-sync")
}

// TestConsoleRefusesAFormWithoutItsCSRFToken: a signed-in browser posting a console form without the session's
// CSRF token (or with another) gets 403, and nothing changes.
func TestConsoleRefusesAFormWithoutItsCSRFToken(t *testing.T) {
	s, admin := consoleStack(t, "csrfco", true, stackWorker{})
	b := newBrowser(t, s)
	b.signIn("csrfco", admin)
	b.do(chromedp.Navigate(b.base+"/console/routing"), chromedp.WaitVisible(chromedp.CSS("#rule-form")))
	post := func(extra string) int {
		return evalIn[int](b, `fetch("/console/routing/save", {method: "POST", credentials: "same-origin",
			headers: {"Content-Type": "application/x-www-form-urlencoded"},
			body: "name=sneaky&tag_glob=x*&index=-1`+extra+`"}).then(r => r.status)`)
	}
	require.Equal(t, http.StatusForbidden, post(""), "no token")
	require.Equal(t, http.StatusForbidden, post("&csrf=not-the-token"), "a wrong token")
	require.Equal(t, http.StatusForbidden, evalIn[int](b, `fetch("/console/integration/disconnect", {method: "POST",
		credentials: "same-origin"}).then(r => r.status)`))
	rules, _, err := s.db.RoutingRules(t.Context(), s.wsID)
	require.NoError(t, err)
	require.Empty(t, rules, "nothing saved")
	conn, err := s.db.FindConnection(t.Context(), s.wsID)
	require.NoError(t, err)
	require.Equal(t, linsync.ConnectionActive, conn.Status, "still connected")

	// The page's own form, which carries the token, goes through.
	b.do(chromedp.SendKeys(chromedp.CSS("#r-name"), "real"), chromedp.SendKeys(chromedp.CSS("#r-glob"), "x*"),
		chromedp.Click(chromedp.CSS("#save-rule")))
	b.waitText("#rules", "real")

	// The session cookie is HttpOnly and SameSite=Lax; a page's script cannot read it.
	require.Equal(t, "", evalIn[string](b, `Promise.resolve(document.cookie)`))
	resp, _ := s.request(http.DefaultClient, http.MethodGet, "/console/routing", nil)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
}

// TestConsoleOtherWorkspaceSeesNothing: another workspace's admin token cannot sign in to this workspace, and signed
// in to its own sees none of this one's connection, rules or failed events.
func TestConsoleOtherWorkspaceSeesNothing(t *testing.T) {
	s, admin := consoleStack(t, "alpha", true, stackWorker{})
	ctx := t.Context()
	_, err := s.db.SaveRoutingRules(ctx, s.wsID, []linsync.RoutingRule{{Name: "alpha-secret-rule", TagGlob: "a*"}})
	require.NoError(t, err)
	other, err := s.db.CreateWorkspace(ctx, "beta", "Beta")
	require.NoError(t, err)
	_, betaToken, err := s.db.CreateToken(ctx, other.ID, "beta-admin", []string{linsync.ScopeAdmin})
	require.NoError(t, err)

	b := newBrowser(t, s)
	b.signIn("alpha", betaToken)
	b.waitText("#page-error", "Sign-in refused")
	b.signIn("beta", betaToken)
	b.waitText("#conn-status", "not connected")
	for _, path := range []string{"/console/integration", "/console/routing", "/console/failed", "/console/sync", "/console/gateway"} {
		b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("main")))
		html, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		require.NoError(t, err)
		for _, leak := range []string{"alpha-secret-rule", "Fake Org", s.wsID, admin} {
			require.NotContains(t, html, leak, "%s shows alpha's %q to beta", path, leak)
		}
	}
	// Alpha itself sees its own.
	b2 := newBrowser(t, s)
	b2.signIn("alpha", admin)
	b2.do(chromedp.Navigate(b2.base + "/console/routing"))
	b2.waitText("#rules", "alpha-secret-rule")
}

// TestConsoleGatewayApproveAndDeny: two deletes an agent sent are held; from the console an admin denies one and
// approves the other (by the hash the page carries): Linear gets one delete, and the audit lists both decisions.
func TestConsoleGatewayApproveAndDeny(t *testing.T) {
	g := newGatewayEnv(t, nil)
	first, second := g.createIssue("Console keep"), g.createIssue("Console drop")
	held := map[string]string{}
	for _, id := range []string{first, second} {
		resp, body := g.agent(deleteIssue("IssueDelete", id))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", body)
		held[id] = body["approval_id"].(string)
	}

	b := newBrowser(t, g.stack)
	b.signIn(g.ws, g.admin)
	b.do(chromedp.Navigate(b.base+"/console/gateway"), chromedp.WaitVisible(chromedp.CSS("#audit")))
	b.waitText("#approval-"+held[first], "issue.delete")
	b.waitText("#approval-"+held[second], "issue.delete")
	require.Contains(t, b.text("#approval-"+held[second]), second, "the summary names the issue the delete is for")
	b.screenshot("console-gateway")

	b.do(chromedp.SendKeys(chromedp.CSS("#reason-"+held[first]), "keep this one"),
		chromedp.Click(chromedp.CSS("#approval-"+held[first]+" button.danger")))
	b.waitText("main", "Denied.")
	b.do(chromedp.Click(chromedp.CSS("#approval-" + held[second] + " button[type=submit]:not(.danger)")))
	b.waitText("main", "Approved.")

	g.waitStatus(held[second], linsync.ApprovalForwarded)
	_, denied := g.agentStatus(held[first])
	require.Equal(t, linsync.ApprovalDenied, denied["status"])
	require.Equal(t, 1, g.forwardedDeletes(), "only the approved delete reached Linear")
	b.do(chromedp.Navigate(b.base+"/console/gateway"), chromedp.WaitVisible(chromedp.CSS("#audit")))
	audit := b.text("#audit")
	for _, want := range []string{linsync.DecisionRejected, linsync.DecisionApproved, linsync.DecisionApprovalRequired, linsync.DecisionAllowed} {
		require.Contains(t, audit, want)
	}
	require.Contains(t, b.text("#approvals"), "Nothing is waiting.")
}

// TestConsoleBulkReplayShowsProgress: two events fail for good; a bulk replay by kind, previewed first, replays both
// while the page follows its progress to the end; Linear gets one issue each.
func TestConsoleBulkReplayShowsProgress(t *testing.T) {
	h := newFailureHarness(t, fOptions{forbiddenKey: true})
	for _, k := range []string{"bulk-1", "bulk-2"} {
		h.waitFailed(h.postEvent(takeoverEvent(k, k+".example.com")))
	}
	h.waitDeadLetters(workflows.TypeFileEvent, 2)
	h.fake.AllowKey(h.apiKey)

	b := newBrowser(t, h.stack)
	b.signIn(h.ws, h.admin)
	b.do(chromedp.Navigate(b.base+"/console/failed"), chromedp.WaitVisible(chromedp.CSS("#bulk-form")),
		chromedp.SendKeys(chromedp.CSS("#b-kind"), workflows.TypeFileEvent),
		chromedp.Click(chromedp.CSS(`#bulk-form button[value="preview"]`)))
	b.waitText("#bulk-plan", "would replay")
	require.Empty(t, h.fakeIssues(), "the preview changes nothing")
	b.do(chromedp.Click(chromedp.CSS(`#bulk-form button[value="replay"]`)))
	b.waitText("#progress", "2 of 2 done, finished")
	require.Eventually(t, func() bool { return len(h.fakeIssues()) == 2 }, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, 2, h.fake.CountRequests("IssueCreate"))
}

// TestConsoleSignOut: signing out ends the session; the console asks to sign in again.
func TestConsoleSignOut(t *testing.T) {
	s, admin := consoleStack(t, "outco", false, stackWorker{})
	b := newBrowser(t, s)
	b.signIn("outco", admin)
	b.do(chromedp.Click(chromedp.CSS("form.signout button")))
	b.waitText("main", "Signed out.")
	b.do(chromedp.Navigate(b.base+"/console/failed"), chromedp.WaitVisible(chromedp.CSS("#signin-form")))
}

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
