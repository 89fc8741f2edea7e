package activities

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync"
)

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// seedBroken is the seed's broken_link_hook payload.
func seedBroken(failure, detail string) linsync.Event {
	return linsync.Event{Type: "link.broken", LinkID: "01J9V7QXMZ8K2Y3N4P5R6T7W8Z", ShortURL: "https://s.elido.me/spring-launch",
		DestinationURL: "https://oldcampaign.example.com/landing", DestinationHost: "oldcampaign.example.com",
		FailureType: failure, FailureDetail: detail, LastWorkingAt: at("2026-05-28T14:22:00Z"), DetectedAt: at("2026-06-04T03:11:42Z"),
		ClicksLast7d: 2841, ClicksLast24h: 412, Tags: []string{"campaign-spring-2026", "paid"}, OwnerEmail: "marketing@example.com",
		TopReferrers: []linsync.Referrer{{Host: "linkedin.com", Clicks: 1203}, {Host: "twitter.com", Clicks: 488}, {Host: "direct", Clicks: 612}, {Host: "bsky.app", Clicks: 2}}}
}

func TestRenderBrokenLinkPerFailureType(t *testing.T) {
	t.Parallel()
	cases := []struct {
		failure, detail, title, fix string
	}{
		{"http_5xx", "502 Bad Gateway, 2 consecutive probes", "[linsync] Broken link: /spring-launch (502 Bad Gateway)", "Check if the destination is rate-limiting or in the middle of a deploy"},
		{"http_4xx", "404 Not Found", "[linsync] Broken link: /spring-launch (404 Not Found)", "404 or 410 usually means the page moved"},
		{"tls_expired", "", "[linsync] Broken link: /spring-launch (TLS certificate expired)", "TLS certificate has expired. Renew it"},
		{"tls_self_signed", "", "[linsync] Broken link: /spring-launch (Self-signed TLS certificate)", "self-signed certificate"},
		{"dns_nxdomain", "NXDOMAIN for oldcampaign.example.com", "[linsync] Broken link: /spring-launch (NXDOMAIN for oldcampaign.example.com)", "no longer resolves (NXDOMAIN)"},
		{"parked_domain", "", "[linsync] Broken link: /spring-launch (Parked domain)", "Domain may have expired or been squatted: archive this link"},
	}
	for _, tc := range cases {
		t.Run(tc.failure, func(t *testing.T) {
			t.Parallel()
			title, body := RenderIssue(IssueView{Kind: "link.broken", Prefix: "linsync", Entries: []linsync.FiledEntry{{Event: seedBroken(tc.failure, tc.detail)}}})
			require.Equal(t, tc.title, title)
			for _, s := range []string{"## Link details", "## Last working", "## Click delta vs 7-day baseline", "## Top referrers", "## Suggested fix"} {
				require.Equal(t, 1, strings.Count(body, s), s)
			}
			require.Contains(t, body, tc.fix)
			require.Equal(t, 1, strings.Count(body, "- **"), "one suggestion per failure type")
			require.Contains(t, body, "Last seen working 2026-05-28 14:22 UTC; found broken 2026-06-04 03:11 UTC, 6 d 12 h later.")
			// 412 in 24 h against 2841/7 = 405.86 a day.
			require.Contains(t, body, "**412**, against a 7-day daily baseline of 405.86 (2,841 clicks in 7 days): **+1.5%**")
			require.Contains(t, body, "1. linkedin.com: 1,203 clicks\n2. direct: 612 clicks\n3. twitter.com: 488 clicks\n")
			require.NotContains(t, body, "bsky.app", "top three only")
		})
	}
}

func TestRenderBrokenLinksOfAHost(t *testing.T) {
	t.Parallel()
	var entries []linsync.FiledEntry
	for i := range 3 {
		ev := seedBroken([]string{"http_5xx", "http_5xx", "parked_domain"}[i], "")
		ev.ShortURL = fmt.Sprintf("https://s.elido.me/l%d", i)
		ev.LastWorkingAt = at(fmt.Sprintf("2026-05-2%dT10:00:00Z", i+1))
		entries = append(entries, linsync.FiledEntry{Event: ev})
	}
	end := time.Date(2026, 6, 5, 3, 11, 0, 0, time.UTC)
	prev := &linsync.FiledIssue{Identifier: "SUP-7", URL: "https://linear.app/x/issue/SUP-7", WindowStart: end.Add(-48 * time.Hour), WindowEnd: ptrTime(end.Add(-24 * time.Hour))}
	title, body := RenderIssue(IssueView{Kind: "link.broken", Prefix: "mon", WindowEnd: &end, Entries: entries, Previous: prev})
	require.Equal(t, "[mon] Broken link: /l0 (HTTP 5xx) and 2 more on oldcampaign.example.com", title)
	require.Contains(t, body, "**3 short links** pointing at **oldcampaign.example.com**")
	require.Contains(t, body, "This continues [SUP-7](https://linear.app/x/issue/SUP-7)")
	require.Contains(t, body, "- Most recently working: 2026-05-23 10:00 UTC (https://s.elido.me/l2)")
	require.Contains(t, body, "Clicks on all 3 links in the last 24 h: **1,236**")
	require.Contains(t, body, "1. linkedin.com: 3,609 clicks")
	require.Equal(t, 2, strings.Count(body, "- **"), "one suggestion per failure type present")
	for i := range 3 {
		require.Contains(t, body, fmt.Sprintf("| https://s.elido.me/l%d |", i))
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

func TestRenderClickThresholdPerBand(t *testing.T) {
	t.Parallel()
	hour := time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC)
	cases := []struct {
		band, title, fix string
		current          int64
		mult             float64
	}{
		{"spike", "[linsync] Click spike: /spring-launch (13.76× baseline)", "Verify this is organic traffic, not a referrer-spoofing campaign. Check the referrer breakdown above.", 8421, 13.76},
		{"cliff", "[linsync] Click cliff: /spring-launch (0.02× baseline)", "Confirm the campaign is still live upstream. If it was paused, archive this link.", 12, 0},
	}
	for _, tc := range cases {
		t.Run(tc.band, func(t *testing.T) {
			t.Parallel()
			ev := linsync.Event{Type: "link.click_threshold", LinkID: "01J9", ShortURL: "https://s.elido.me/spring-launch", Band: tc.band,
				CurrentHourClicks: tc.current, BaselineHourlyClicks: 612, Multiplier: tc.mult, TriggeredAt: at("2026-06-04T11:14:00Z"),
				TopReferrers: []linsync.Referrer{{Host: "news.ycombinator.com", Clicks: 6203}, {Host: "direct", Clicks: 1488}}}
			title, body := RenderIssue(IssueView{Kind: "link.click_threshold", Prefix: "linsync", WindowStart: hour, Entries: []linsync.FiledEntry{{Event: ev}}})
			require.Equal(t, tc.title, title)
			require.Contains(t, body, fmt.Sprintf("| Current hour | %s |", grouped(tc.current)))
			require.Contains(t, body, "| Trailing 7-day hourly baseline | 612 |")
			require.Contains(t, body, "1. news.ycombinator.com: 6,203 clicks")
			require.Contains(t, body, "## Suggested fix\n\n"+tc.fix)
		})
	}
}

func TestRenderOtherKinds(t *testing.T) {
	t.Parallel()
	hour := time.Date(2026, 6, 4, 11, 0, 0, 0, time.UTC)
	cases := []struct {
		kind  string
		ev    linsync.Event
		title string
		body  []string
	}{
		{"domain.takeover_detected", linsync.Event{Type: "domain.takeover_detected", Domain: "go.example.com", DanglingRecord: "CNAME old.s3",
			AffectedLinks: []string{"https://go.example.com/a"}}, "[p] Domain takeover detected: go.example.com",
			[]string{"- Dangling record: `CNAME old.s3`", "## Affected short links (1)", "Remove the dangling DNS record"}},
		{"link.created", linsync.Event{Type: "link.created", LinkID: "L1", ShortURL: "https://s.elido.me/new", DestinationURL: "https://x.example/"},
			"[p] New short link: /new", []string{"- Destination: https://x.example/", "## Suggested check"}},
		{"link.scan_complete", linsync.Event{Type: "link.scan_complete", ScanID: "scan-9", LinksScanned: 12000,
			Flagged: []linsync.FlaggedLink{{ShortURL: "https://s.elido.me/a", FailureType: "http_4xx"}}},
			"[p] Link scan scan-9: 1 flagged", []string{"12,000 links scanned, **1 flagged**", "| https://s.elido.me/a |", "(`http_4xx`)"}},
		{"digest", linsync.Event{Type: "link.click_threshold", Band: "spike", ShortURL: "https://s.elido.me/x", CurrentHourClicks: 50, BaselineHourlyClicks: 10},
			"[p] Issue cap reached: 1 events in the digest for 2026-06-04 11:00–12:00 UTC",
			[]string{"The creation cap of **20 new issues per hour**", "- `link.click_threshold` spike on https://s.elido.me/x (5× baseline)"}},
	}
	for _, tc := range cases {
		title, body := RenderIssue(IssueView{Kind: tc.kind, Prefix: "p", WindowStart: hour, CapPerHour: 20, Entries: []linsync.FiledEntry{{Event: tc.ev}}})
		require.Equal(t, tc.title, title, tc.kind)
		for _, s := range tc.body {
			require.Contains(t, body, s, tc.kind)
		}
	}
}

func TestFiledIssueIDIsStable(t *testing.T) {
	t.Parallel()
	w := time.Date(2026, 6, 4, 3, 0, 0, 0, time.UTC)
	a := FiledIssueID("ws", "link.broken:host:x", w)
	require.Equal(t, a, FiledIssueID("ws", "link.broken:host:x", w.In(time.FixedZone("x", 7200))))
	require.NotEqual(t, a, FiledIssueID("ws", "link.broken:host:x", w.Add(time.Second)))
	require.NotEqual(t, a, FiledIssueID("ws2", "link.broken:host:x", w))
}

// TestRenderBoundsAHugeHost: a host of 20,000 broken links (and a digest of as many events) lists the first links
// and counts the rest, pointing at linsync's filed-issue view, so the description stays far inside Linear's limits.
func TestRenderBoundsAHugeHost(t *testing.T) {
	t.Parallel()
	entries := make([]linsync.FiledEntry, 20000)
	for i := range entries {
		ev := seedBroken("http_5xx", "502 Bad Gateway")
		ev.ShortURL = fmt.Sprintf("https://s.elido.me/spring-%05d", i)
		entries[i] = linsync.FiledEntry{Key: fmt.Sprint(i), ShortURL: ev.ShortURL, Event: ev}
	}
	for _, kind := range []string{linsync.EventLinkBroken, linsync.EventKindDigest} {
		title, body := RenderIssue(IssueView{ID: "issue-1", Kind: kind, Prefix: "linsync", Entries: entries,
			WindowStart: time.Date(2026, 6, 4, 3, 0, 0, 0, time.UTC), CapPerHour: 10})
		require.Less(t, len(body), 30000, "%s: bounded description", kind)
		require.Contains(t, body, "https://s.elido.me/spring-00049", "%s: the first links are listed", kind)
		require.NotContains(t, body, "https://s.elido.me/spring-00050", kind)
		require.Contains(t, body, "19,950 more", kind)
		require.Contains(t, body, "filed-issues` (issue `issue-1`)", "%s: where to see them all", kind)
		require.Less(t, len(title), 255, kind)
	}
}
