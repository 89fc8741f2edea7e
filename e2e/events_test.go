package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/api"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
	"github.com/linsync/linsync/workflows"
)

// eventsHarness is the real stack for events: Postgres, a Temporal dev server, the API, a worker with the Events
// activities, and the fake Linear connected to the workspace by API key.
type eventsHarness struct {
	*stack
	token  string // events:write
	admin  string
	reader *linear.Client
	// plain sends what it is given instead of going through stack.client, which validates every request and
	// response against the OpenAPI document.
	plain bool
}

func newEventsHarness(t *testing.T) *eventsHarness {
	t.Helper()
	s := newStack(t, stackOptions{cfg: api.Config{StartTimeout: 5 * time.Second}, worker: stackWorker{events: true},
		workspace: "links", workspaceName: "Links",
		connect: &stackConnection{orgName: "Fake", labels: []string{"short-link", "auto-filed"}},
		tokens:  []stackToken{{"scanner", []string{linsync.ScopeEventsWrite}}, {"admin", []string{linsync.ScopeAdmin}}}})
	reader, err := linear.New(linear.Options{Credential: linear.Credential{APIKey: s.sd.APIKey}, Endpoint: s.fake.URL()})
	require.NoError(t, err)
	return &eventsHarness{stack: s, token: s.tokens["scanner"], admin: s.tokens["admin"], reader: reader}
}

// call sends a JSON request and decodes the JSON answer.
func (h *eventsHarness) call(method, path, token string, body any, header ...string) (int, map[string]any) {
	h.t.Helper()
	cl := h.client
	if h.plain {
		cl = http.DefaultClient
	}
	resp, raw := h.request(cl, method, "/v1/workspaces/links"+path, body,
		append([]string{"Authorization", "Bearer " + token, "Content-Type", "application/json"}, header...)...)
	var out map[string]any
	require.NoError(h.t, json.Unmarshal(raw, &out), "answer: %s", raw)
	return resp.StatusCode, out
}

func (h *eventsHarness) settings(body map[string]any) {
	h.t.Helper()
	code, out := h.call(http.MethodPut, "/event-settings", h.admin, body)
	require.Equal(h.t, http.StatusOK, code, "%v", out)
}

// batch posts events in batches of at most 500 and requires every one to be answered with want.
func (h *eventsHarness) batch(events []map[string]any, want string) {
	h.t.Helper()
	for len(events) > 0 {
		n := min(len(events), api.MaxEventBatch)
		code, out := h.call(http.MethodPost, "/events:batch", h.token, map[string]any{"items": events[:n]})
		require.Equal(h.t, http.StatusOK, code, "%v", out)
		for _, it := range out["items"].([]any) {
			require.Equal(h.t, want, it.(map[string]any)["status"], "%v", it)
		}
		events = events[n:]
	}
}

func (h *eventsHarness) filed() []linsync.FiledIssue {
	h.t.Helper()
	var all []linsync.FiledIssue
	cursor := ""
	for {
		issues, next, err := h.db.ListFiledIssues(h.t.Context(), h.wsID, 100, cursor)
		require.NoError(h.t, err)
		all = append(all, issues...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

// waitSettled waits until want issues exist, each created in Linear with its latest entries in its description.
func (h *eventsHarness) waitSettled(want int, entries int) []linsync.FiledIssue {
	h.t.Helper()
	var issues []linsync.FiledIssue
	require.Eventually(h.t, func() bool {
		issues = h.filed()
		total := 0
		for _, f := range issues {
			if f.Status != linsync.FiledCreated && f.Status != linsync.FiledCapped {
				return false
			}
			total += f.EntryCount
		}
		return len(issues) == want && total >= entries
		// A bound on the wait, not a speed target (that is `make bench`'s): on a shared two-core machine, with every
		// end-to-end test of the package running in parallel, filing 850 links takes well over a minute.
	}, 3*time.Minute, 250*time.Millisecond, "issues filed")
	require.Eventually(h.t, func() bool {
		issues = h.filed()
		for _, f := range issues {
			if f.Status != linsync.FiledCreated {
				continue
			}
			if f.AppliedVersion != f.ContentVersion {
				return false
			}
			// A description lists the first 50 links and counts the rest.
			is := h.issue(f.ID)
			for _, l := range f.Links[:min(len(f.Links), 50)] {
				if is.Description == nil || !strings.Contains(*is.Description, l) {
					return false
				}
			}
		}
		return true
	}, 30*time.Second, time.Second, "every issue shows its latest links")
	return issues
}

func (h *eventsHarness) issue(id string) linear.IssueFields {
	h.t.Helper()
	r, err := linear.Issue(h.t.Context(), h.reader.GQL(), id)
	require.NoError(h.t, err)
	return r.Issue.IssueFields
}

func brokenEvent(key, host, path, failure string, tags ...string) map[string]any {
	return map[string]any{
		"id": key, "event": "link.broken", "link_id": "link-" + key, "short_url": "https://s.example.me/" + path,
		"destination_url": "https://" + host + "/landing/" + path, "failure_type": failure,
		"failure_detail": "502 Bad Gateway, 2 consecutive probes", "last_working_at": "2026-05-28T14:22:00Z",
		"detected_at": "2026-06-04T03:11:42Z", "clicks_last_7d": 2841, "clicks_last_24h": 412,
		"top_referrers": []map[string]any{{"host": "linkedin.com", "clicks": 1203}, {"host": "twitter.com", "clicks": 488},
			{"host": "direct", "clicks": 612}, {"host": "bsky.app", "clicks": 3}},
		"tags": tags, "owner_email": "marketing@example.com",
	}
}

// TestEventsEndToEnd runs the whole events capability on the real stack: 800 broken links of one host and 50 of
// five others through the batch endpoint, resubmissions, click thresholds, a takeover, a scan summary and an
// unrequested link.created; routing by glob, failure type and default; labels; simulate against filing; and the
// Linear requests it all cost.
func TestEventsEndToEnd(t *testing.T) {
	t.Parallel()
	h := newEventsHarness(t)
	sd := h.sd
	h.settings(map[string]any{"debounce_ms": 1000})

	code, out := h.call(http.MethodPut, "/routing-rules", h.admin, map[string]any{"rules": []map[string]any{
		{"name": "growth", "tag_glob": "campaign-*", "team_id": sd.Plain.Key, "labels": []string{"growth"}},
		{"name": "platform", "failure_type": "tls_expired", "team_id": sd.Plain.ID, "labels": []string{"tls"}, "priority": 2},
		{"name": "fallback", "default": true, "team_id": sd.Triage.ID, "labels": []string{"triaged"}},
	}})
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, sd.Plain.ID, out["rules"].([]any)[0].(map[string]any)["team_id"], "a team key is stored as its id")

	// 800 links on one host (routed by tag glob), and 10 on each of five hosts, one host per other failure type.
	var events []map[string]any
	for i := range 800 {
		events = append(events, brokenEvent(fmt.Sprintf("big-%03d", i), "oldcampaign.example.com",
			fmt.Sprintf("spring-%03d", i), "http_5xx", "campaign-spring-2026", "paid"))
	}
	others := map[string]string{"tls_expired": "certs.example.net", "dns_nxdomain": "gone.example.org",
		"parked_domain": "parked.example.biz", "http_4xx": "moved.example.io", "tls_self_signed": "selfsigned.example.dev"}
	failures := []string{"tls_expired", "dns_nxdomain", "parked_domain", "http_4xx", "tls_self_signed"}
	for _, ft := range failures {
		for i := range 10 {
			events = append(events, brokenEvent(fmt.Sprintf("%s-%d", ft, i), others[ft], fmt.Sprintf("%s-%d", ft, i), ft, "organic"))
		}
	}
	// Interleave so hosts race each other, as a real scan would.
	slices.SortStableFunc(events, func(a, b map[string]any) int { return strings.Compare(a["id"].(string)[4:], b["id"].(string)[4:]) })

	// What simulate says, before anything is filed.
	simulated := map[string]map[string]any{}
	for _, ev := range []map[string]any{events[0], brokenEvent("x", others["tls_expired"], "p", "tls_expired", "organic"),
		brokenEvent("y", others["dns_nxdomain"], "p", "dns_nxdomain", "organic")} {
		code, out := h.call(http.MethodPost, "/routing:simulate", h.token, ev)
		require.Equal(t, http.StatusOK, code, "%v", out)
		d := out["decision"].(map[string]any)
		simulated[d["dedup_key"].(string)] = d
	}
	require.Len(t, simulated, 3)
	require.Empty(t, h.filed(), "simulate files nothing")
	require.Zero(t, h.fake.CountRequests("IssueCreate"))

	start := time.Now()
	h.batch(events, "accepted")
	t.Logf("850 broken-link events accepted in %v", time.Since(start))

	// Resubmissions: the same keys change nothing; the same link under a new key changes nothing either.
	h.batch(events[:100], "duplicate")
	code, out = h.call(http.MethodPost, "/events", h.token, events[5], "Idempotency-Key", events[5]["id"].(string))
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, "duplicate", out["status"])
	again := brokenEvent("big-000", "oldcampaign.example.com", "spring-000", "http_5xx", "campaign-spring-2026", "paid")
	again["id"] = "rescan-big-000"
	code, out = h.call(http.MethodPost, "/events", h.token, again)
	require.Equal(t, http.StatusAccepted, code, "%v", out)

	issues := h.waitSettled(6, 850)
	settled := time.Since(start)
	t.Logf("850 broken links filed and settled in %v", settled)
	byKey := map[string]linsync.FiledIssue{}
	for _, f := range issues {
		byKey[f.DedupKey] = f
	}
	big := byKey["link.broken:host:oldcampaign.example.com"]
	require.Equal(t, 800, big.EntryCount)
	require.Len(t, big.Links, 800)
	is := h.issue(big.ID)
	require.Regexp(t, `^\[linsync\] Broken link: /spring-\d{3} \(502 Bad Gateway\) and 799 more on oldcampaign\.example\.com$`, is.Title)
	// The description lists the first 50 links to arrive and points at linsync's filed-issue view, which lists
	// every one, for the other 750.
	for _, l := range big.Links[:50] {
		require.Contains(t, *is.Description, l+" |")
	}
	require.NotContains(t, *is.Description, big.Links[50]+" |")
	require.Contains(t, *is.Description, "…and 750 more broken links")
	require.Contains(t, *is.Description, "(issue `"+big.ID+"`)")
	require.Less(t, len(*is.Description), 30000, "a bounded description")

	// Payloads stay small: the aggregator's runs carry counts, not the 800 entries (Temporal warns at 512 KB).
	hist, err := linsynctest.ReadHistories(t.Context(), h.temporal,
		fmt.Sprintf("WorkflowId = '%s'", workflows.HostAggregatorID(h.wsID, "oldcampaign.example.com")), 0)
	require.NoError(t, err)
	t.Logf("the 800-link host's aggregator: %d runs, %d signals, largest payload %d bytes", hist.Runs, hist.Signals, hist.LargestPayload)
	require.Positive(t, hist.Runs)
	require.Less(t, hist.LargestPayload, 16<<10, "the aggregator's payloads do not grow with its links")
	// Woken once per filing, not signalled once per link: far below Temporal's 10,000 signals per run.
	require.Less(t, hist.Signals, 800/4, "signals to the aggregator")
	for _, section := range []string{"## Link details", "## Last working", "## Click delta vs 7-day baseline", "## Top referrers", "## Suggested fix"} {
		require.Contains(t, *is.Description, section)
	}
	require.Contains(t, *is.Description, "Check if the destination is rate-limiting or in the middle of a deploy")
	require.Equal(t, sd.Plain.ID, is.Team.Id, "routed by tag glob")
	for _, ft := range failures {
		f := byKey["link.broken:host:"+others[ft]]
		require.Equal(t, 10, f.EntryCount, ft)
		is := h.issue(f.ID)
		require.Contains(t, is.Title, "and 9 more on "+others[ft])
		require.Contains(t, *is.Description, "(`"+ft+"`)", "the suggested fix of "+ft)
		want := sd.Triage.ID
		if ft == "tls_expired" {
			want = sd.Plain.ID // routed by failure type
		}
		require.Equal(t, want, is.Team.Id, ft)
	}

	// Simulate said what filing did.
	for key, d := range simulated {
		f, ok := byKey[key]
		require.True(t, ok, key)
		require.Equal(t, d["team_id"], f.TeamID, key)
		require.EqualValues(t, d["rule_index"], f.RuleIndex, key)
		require.EqualValues(t, d["priority"], f.Priority, key)
		var labels []string
		for _, l := range d["labels"].([]any) {
			labels = append(labels, l.(string))
		}
		require.Equal(t, labels, f.Labels, key)
	}
	require.Equal(t, []string{"short-link", "auto-filed", "paid", "growth"}, big.Labels)

	// Linear economy: one create per host, a bounded number of updates for the 800.
	require.Equal(t, 6, h.fake.CountRequests("IssueCreate"))
	updates := map[string]int{}
	for _, r := range h.fake.Requests() {
		if r.OperationName == "IssueUpdate" {
			updates[r.Variables["id"].(string)]++
		}
	}
	t.Logf("Linear requests: %d issueCreate, %d issueUpdate (%d for the 800-link host), %d issueLabelCreate, %d in all",
		h.fake.CountRequests("IssueCreate"), h.fake.CountRequests("IssueUpdate"), updates[big.ID],
		h.fake.CountRequests("IssueLabelCreate"), h.fake.CountRequests(""))
	// Debounced at 1 s, the host's issue is rewritten at most once a second while its links keep arriving (and
	// they arrive for as long as filing takes, which a loaded machine stretches), plus a final write: bounded by
	// time, never by the 800 links.
	bound := int(settled/time.Second) + 2
	require.LessOrEqual(t, updates[big.ID], min(bound, 100), "800 links cost a bounded number of updates")
	require.Less(t, h.fake.CountRequests("IssueUpdate"), 800/4)

	// Labels were created once: every name exists once per team, and the issues carry them.
	for _, team := range []string{sd.Plain.ID, sd.Triage.ID} {
		tm, err := linear.TeamDetails(t.Context(), h.reader.GQL(), team)
		require.NoError(t, err)
		seen := map[string]int{}
		for _, l := range tm.Team.Labels.Nodes {
			seen[strings.ToLower(l.Name)]++
		}
		for name, n := range seen {
			require.Equal(t, 1, n, "label %q in team %s", name, team)
		}
	}
	require.Len(t, is.LabelIds, 4)

	// The other event types.
	h.fake.ResetRequests()
	click := func(key, band string, current int, mult float64) map[string]any {
		return map[string]any{"id": key, "event": "link.click_threshold", "link_id": "01J9V7QXMZ8K2Y3N4P5R6T7W8Z",
			"short_url": "https://s.example.me/spring-launch", "band": band, "current_hour_clicks": current,
			"baseline_hourly_clicks": 612, "multiplier": mult, "triggered_at": "2026-06-04T11:14:00Z",
			"top_referrers": []map[string]any{{"host": "news.ycombinator.com", "clicks": 6203}, {"host": "direct", "clicks": 1488}},
			"tags":          []string{"campaign-spring-2026"}}
	}
	h.batch([]map[string]any{
		click("c1", "spike", 8421, 13.76), click("c2", "cliff", 12, 0.02),
		{"id": "t1", "event": "domain.takeover_detected", "domain": "go.example.com", "dangling_record": "CNAME go.example.com -> old-bucket.s3.amazonaws.com",
			"detected_at": "2026-06-04T09:00:00Z", "affected_short_urls": []string{"https://go.example.com/a"}},
		{"id": "s1", "event": "link.scan_complete", "scan_id": "scan-2026-23", "links_scanned": 12000,
			"flagged": []map[string]any{{"short_url": "https://s.example.me/a", "failure_type": "http_4xx"}, {"short_url": "https://s.example.me/b", "failure_type": "parked_domain"}}},
		{"id": "n1", "event": "link.created", "link_id": "new-1", "short_url": "https://s.example.me/new"},
	}, "accepted")
	h.waitSettled(10, 854)
	h.batch([]map[string]any{click("c3", "spike", 9000, 14.7)}, "accepted") // same link, band and hour: same issue
	require.Eventually(t, func() bool { return h.fake.CountRequests("IssueUpdate") >= 1 }, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, 4, h.fake.CountRequests("IssueCreate"), "click spike, cliff, takeover and scan; link.created was not asked for")
	for _, f := range h.filed() {
		is := h.issue(f.ID)
		switch f.Kind {
		case "link.click_threshold":
			if strings.Contains(f.DedupKey, ":spike:") {
				require.Contains(t, is.Title, "[linsync] Click spike: /spring-launch (14.7× baseline)")
				require.Contains(t, *is.Description, "Verify this is organic traffic, not a referrer-spoofing campaign")
				require.Contains(t, *is.Description, "The threshold fired 2 times this hour")
			} else {
				require.Contains(t, *is.Description, "Confirm the campaign is still live upstream")
			}
			require.Equal(t, sd.Plain.ID, is.Team.Id)
		case "domain.takeover_detected":
			require.EqualValues(t, 1, is.Priority, "a takeover is urgent")
			require.Contains(t, is.Title, "Domain takeover detected: go.example.com")
		case "link.scan_complete":
			require.Contains(t, is.Title, "Link scan scan-2026-23: 2 flagged")
			require.Contains(t, *is.Description, "https://s.example.me/b")
		}
	}

	// The API lists what was filed, page by page.
	code, out = h.call(http.MethodGet, "/filed-issues?limit=4", h.token, nil)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Len(t, out["filed_issues"], 4)
	require.NotEmpty(t, out["next_cursor"])
	seen := 4
	for cursor := out["next_cursor"].(string); cursor != ""; {
		code, out = h.call(http.MethodGet, "/filed-issues?limit=4&cursor="+cursor, h.token, nil)
		require.Equal(t, http.StatusOK, code, "%v", out)
		seen += len(out["filed_issues"].([]any))
		cursor, _ = out["next_cursor"].(string)
	}
	require.Equal(t, 10, seen)
}

// TestEventsCapSpillsIntoOneDigest sets a cap of two issues per team and hour: the third and fourth events of the
// hour go into one digest issue, created once and updated in place.
func TestEventsCapSpillsIntoOneDigest(t *testing.T) {
	t.Parallel()
	h := newEventsHarness(t)
	h.settings(map[string]any{"creation_cap_per_hour": 2, "debounce_ms": 300, "title_prefix": "mon"})
	var events []map[string]any
	for i := range 5 {
		events = append(events, map[string]any{"id": fmt.Sprintf("c%d", i), "event": "link.click_threshold",
			"link_id": fmt.Sprintf("L%d", i), "short_url": fmt.Sprintf("https://s.example.me/l%d", i), "band": "spike",
			"current_hour_clicks": 100 * (i + 1), "baseline_hourly_clicks": 10})
	}
	h.batch(events, "accepted")
	var digest linsync.FiledIssue
	require.Eventually(t, func() bool {
		created, capped := 0, 0
		for _, f := range h.filed() {
			switch {
			case f.Kind == "digest" && f.Status == linsync.FiledCreated && f.EntryCount == 3:
				digest = f
			case f.Status == linsync.FiledCreated && f.Kind != "digest":
				created++
			case f.Status == linsync.FiledCapped:
				capped++
			}
		}
		return created == 2 && capped == 3 && digest.ID != ""
	}, 60*time.Second, 250*time.Millisecond)
	require.Eventually(t, func() bool {
		is := h.issue(digest.ID)
		return strings.Count(*is.Description, "`link.click_threshold`") == 3
	}, 30*time.Second, 500*time.Millisecond)
	is := h.issue(digest.ID)
	require.Contains(t, is.Title, "[mon] Issue cap reached: 3 events in the digest")
	require.Contains(t, *is.Description, "The creation cap of **2 new issues per hour** for this team was reached")
	require.Equal(t, 3, h.fake.CountRequests("IssueCreate"), "two issues and one digest")
}

// TestEventsIntakeValidation covers the answers of intake and rules that start nothing.
func TestEventsIntakeValidation(t *testing.T) {
	t.Parallel()
	h := newEventsHarness(t)
	h.plain = true // these requests are wrong on purpose; the document would reject them before the server does

	ok := brokenEvent("v1", "a.example.com", "p", "http_5xx")
	bad := func(mut func(map[string]any)) map[string]any {
		ev := brokenEvent("v2", "a.example.com", "p", "http_5xx")
		mut(ev)
		return ev
	}
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown failure type", bad(func(e map[string]any) { e["failure_type"] = "http_3xx" }), "failure_type"},
		{"missing failure type", bad(func(e map[string]any) { delete(e, "failure_type") }), "failure_type"},
		{"bad URL", bad(func(e map[string]any) { e["destination_url"] = "not a url" }), "destination_url"},
		{"bad time", bad(func(e map[string]any) { e["detected_at"] = "yesterday" }), "detected_at"},
		{"wrong type", bad(func(e map[string]any) { e["clicks_last_7d"] = "many" }), "clicks_last_7d"},
		{"negative referrer", bad(func(e map[string]any) { e["top_referrers"] = []map[string]any{{"host": "x", "clicks": -1}} }), "top_referrers[0].clicks"},
		{"unknown event", bad(func(e map[string]any) { e["event"] = "link.exploded" }), "event"},
		{"no key", bad(func(e map[string]any) { delete(e, "id") }), "idempotency_key"},
		{"bad band", map[string]any{"id": "b", "event": "link.click_threshold", "link_id": "L", "short_url": "https://s.example.me/x",
			"band": "plateau", "current_hour_clicks": 1, "baseline_hourly_clicks": 1}, "band"},
	}
	for _, tc := range cases {
		code, out := h.call(http.MethodPost, "/events", h.token, tc.body)
		require.Equal(t, http.StatusUnprocessableEntity, code, "%s: %v", tc.name, out)
		require.Equal(t, tc.field, out["error"].(map[string]any)["field"], tc.name)
	}

	// A batch answers each item; field paths name the item.
	code, out := h.call(http.MethodPost, "/events:batch", h.token, map[string]any{"items": []any{ok, cases[0].body, ok, cases[8].body}})
	require.Equal(t, http.StatusOK, code, "%v", out)
	items := out["items"].([]any)
	require.Equal(t, "accepted", items[0].(map[string]any)["status"])
	require.Equal(t, "invalid", items[1].(map[string]any)["status"])
	require.Equal(t, "items[1].failure_type", items[1].(map[string]any)["errors"].([]any)[0].(map[string]any)["field"])
	require.Equal(t, "duplicate", items[2].(map[string]any)["status"], "the same key twice in one batch")
	require.Equal(t, "items[3].band", items[3].(map[string]any)["errors"].([]any)[0].(map[string]any)["field"])

	tooMany := make([]any, api.MaxEventBatch+1)
	for i := range tooMany {
		tooMany[i] = ok
	}
	code, out = h.call(http.MethodPost, "/events:batch", h.token, map[string]any{"items": tooMany})
	require.Equal(t, http.StatusUnprocessableEntity, code, "%v", out)
	require.Equal(t, "items", out["error"].(map[string]any)["field"])
	code, _ = h.call(http.MethodPost, "/events:other", h.token, map[string]any{"items": []any{}})
	require.Equal(t, http.StatusNotFound, code)

	// Rules are checked on save.
	for _, tc := range []struct {
		rules []map[string]any
		field string
	}{
		{[]map[string]any{{"tag_glob": "campaign-[", "team_id": h.sd.Triage.ID}}, "rules[0].tag_glob"},
		{[]map[string]any{{"tag_glob": "docs-*", "team_id": "NOPE"}}, "rules[0].team_id"},
		{[]map[string]any{{"default": true}, {"tag_glob": "x*"}}, "rules[0].default"},
		{[]map[string]any{{"labels": []string{"x"}}}, "rules[0]"},
		{[]map[string]any{{"failure_type": "http_9xx"}}, "rules[0].failure_type"},
	} {
		code, out := h.call(http.MethodPut, "/routing-rules", h.admin, map[string]any{"rules": tc.rules})
		require.Equal(t, http.StatusUnprocessableEntity, code, "%v", out)
		require.Equal(t, tc.field, out["error"].(map[string]any)["field"])
	}
	code, _ = h.call(http.MethodPut, "/routing-rules", h.token, map[string]any{"rules": []any{}})
	require.Equal(t, http.StatusForbidden, code, "changing rules needs admin")
	code, out = h.call(http.MethodGet, "/routing-rules", h.token, nil)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 0, out["version"])

	code, out = h.call(http.MethodPut, "/event-settings", h.admin, map[string]any{"broken_link_window_seconds": 5})
	require.Equal(t, http.StatusUnprocessableEntity, code, "%v", out)
	code, out = h.call(http.MethodGet, "/event-settings", h.token, nil)
	require.Equal(t, http.StatusOK, code)
	st := out["settings"].(map[string]any)
	require.Equal(t, "linsync", st["title_prefix"])
	require.EqualValues(t, 86400, st["broken_link_window_seconds"])
	require.EqualValues(t, 20, st["creation_cap_per_hour"])
	require.Equal(t, []any{"paid", "organic"}, st["tag_labels"])

}
