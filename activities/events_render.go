package activities

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/linsync/linsync"
)

// IssueView is everything an event issue's title and body are rendered from. Rendering is pure: the same view
// always gives the same text, which is what lets a retried update be skipped when nothing changed.
type IssueView struct {
	// ID is the issue's id in linsync's filed-issue view, where every entry is listed.
	ID          string
	Kind        string
	Prefix      string
	WindowStart time.Time
	WindowEnd   *time.Time
	Entries     []linsync.FiledEntry
	// Previous is the issue of the window before this one, when there was one.
	Previous *linsync.FiledIssue
	// CapPerHour is the cap a digest reports.
	CapPerHour int
}

// listedEntries is how many entries an issue's description lists one by one; the rest are counted, and linsync's
// filed-issue view lists them all. It keeps a host of 20,000 broken links well inside Linear's limits on a
// description (the whole description stays under about 30,000 characters).
const listedEntries = 50

// moreEntries says how many entries the description did not list and where to see them all; "" when it listed all.
func moreEntries(b *strings.Builder, v IssueView, noun string) {
	if n := len(v.Entries) - listedEntries; n > 0 {
		fmt.Fprintf(b, "\n…and %s more %s, not listed here to keep this issue readable. linsync's filed-issue view lists every one: "+
			"`GET /v1/workspaces/{workspace}/filed-issues` (issue `%s`).\n", grouped(int64(n)), noun, v.ID)
	}
}

// failureFixes is the suggested fix per failure type: one per type.
var failureFixes = map[string]string{
	"http_4xx":        "The destination answers with a client error (404 or 410 usually means the page moved or was removed). Point the short link at the page's new URL, or archive the link.",
	"http_5xx":        "Check if the destination is rate-limiting or in the middle of a deploy. If the errors persist after the deploy, contact the destination's owner or point the link elsewhere.",
	"tls_expired":     "The destination's TLS certificate has expired. Renew it (check the auto-renewal job of the custom domain), or point the link at an HTTPS URL with a valid certificate.",
	"tls_self_signed": "The destination serves a self-signed certificate, so visitors see a browser warning. Install a certificate from a public CA, or point the link elsewhere.",
	"dns_nxdomain":    "The destination host no longer resolves (NXDOMAIN). Check whether the domain expired or its DNS records were removed; restore them, update the link, or archive it.",
	"parked_domain":   "Domain may have expired or been squatted: archive this link, and check every other link pointing at the domain.",
}

// failureLabels names failure types for people.
var failureLabels = map[string]string{
	"http_4xx":        "HTTP 4xx",
	"http_5xx":        "HTTP 5xx",
	"tls_expired":     "TLS certificate expired",
	"tls_self_signed": "Self-signed TLS certificate",
	"dns_nxdomain":    "DNS NXDOMAIN",
	"parked_domain":   "Parked domain",
}

// bandFixes is the suggested fix per click-threshold band.
var bandFixes = map[string]string{
	"spike": "Verify this is organic traffic, not a referrer-spoofing campaign. Check the referrer breakdown above.",
	"cliff": "Confirm the campaign is still live upstream. If it was paused, archive this link.",
}

const takeoverFix = "Remove the dangling DNS record, or reclaim the resource it points at, then re-verify the custom domain. Pause the affected links until the domain is back under your control."

// RenderIssue returns the title and Markdown body of an event issue.
func RenderIssue(v IssueView) (title, body string) {
	switch v.Kind {
	case linsync.EventLinkBroken:
		return renderBroken(v)
	case linsync.EventClickThreshold:
		return renderClicks(v)
	case linsync.EventDomainTakeover:
		return renderTakeover(v)
	case linsync.EventLinkCreated:
		return renderCreated(v)
	case linsync.EventScanComplete:
		return renderScan(v)
	case linsync.EventKindDigest:
		return renderDigest(v)
	}
	return fmt.Sprintf("[%s] %s", v.Prefix, v.Kind), ""
}

func renderBroken(v IssueView) (string, string) {
	first := v.Entries[0].Event
	host := hostOf(first.DestinationURL)
	title := fmt.Sprintf("[%s] Broken link: %s (%s)", v.Prefix, pathOf(first.ShortURL), failureSummary(first))
	if n := len(v.Entries); n > 1 {
		title += fmt.Sprintf(" and %d more on %s", n-1, host)
	}

	var b strings.Builder
	if n := len(v.Entries); n == 1 {
		fmt.Fprintf(&b, "A short link pointing at **%s** is broken.\n", host)
	} else {
		fmt.Fprintf(&b, "**%d short links** pointing at **%s** are broken. Every link found broken on this host until %s is listed here; this issue is updated in place.\n",
			n, host, stamp(v.WindowEnd))
	}
	previous(&b, v.Previous)

	b.WriteString("\n## Link details\n\n| Short link | Destination | Failure | Detected | Owner | Tags |\n|---|---|---|---|---|---|\n")
	for _, e := range v.Entries[:min(len(v.Entries), listedEntries)] {
		ev := e.Event
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(ev.ShortURL), cell(ev.DestinationURL),
			cell(failureCell(ev)), stamp(ev.DetectedAt), cell(ev.OwnerEmail), cell(strings.Join(ev.Tags, ", ")))
	}
	moreEntries(&b, v, "broken links")

	b.WriteString("\n## Last working\n\n")
	b.WriteString(lastWorking(v.Entries))

	var last24, last7d int64
	for _, e := range v.Entries {
		last24 += e.Event.ClicksLast24h
		last7d += e.Event.ClicksLast7d
	}
	b.WriteString("\n## Click delta vs 7-day baseline\n\n")
	baseline := float64(last7d) / 7
	scope := "this link"
	if len(v.Entries) > 1 {
		scope = fmt.Sprintf("all %d links", len(v.Entries))
	}
	fmt.Fprintf(&b, "Clicks on %s in the last 24 h: **%s**, against a 7-day daily baseline of %s (%s clicks in 7 days): **%s**.\n",
		scope, grouped(last24), decimal(baseline), grouped(last7d), delta(float64(last24), baseline))

	b.WriteString("\n## Top referrers\n\n")
	b.WriteString(topReferrers(v.Entries))

	b.WriteString("\n## Suggested fix\n\n")
	seen := map[string]bool{}
	for _, e := range v.Entries {
		seen[e.Event.FailureType] = true
	}
	for _, ft := range linsync.FailureTypes {
		if seen[ft] {
			fmt.Fprintf(&b, "- **%s** (`%s`): %s\n", failureLabels[ft], ft, failureFixes[ft])
		}
	}
	return title, b.String()
}

func renderClicks(v IssueView) (string, string) {
	ev := latestTrigger(v.Entries)
	mult := multiplier(ev)
	title := fmt.Sprintf("[%s] Click %s: %s (%s× baseline)", v.Prefix, ev.Band, pathOf(ev.ShortURL), decimal(mult))

	var b strings.Builder
	what := "rose above"
	if ev.Band == "cliff" {
		what = "fell below"
	}
	fmt.Fprintf(&b, "Clicks on %s %s the %s band in the hour starting %s.\n", ev.ShortURL, what, ev.Band, stamp(&v.WindowStart))
	if n := len(v.Entries); n > 1 {
		fmt.Fprintf(&b, "The threshold fired %d times this hour; the figures below are from the latest trigger.\n", n)
	}
	b.WriteString("\n## Link details\n\n")
	fmt.Fprintf(&b, "- Short link: %s\n- Link id: `%s`\n- Tags: %s\n- Triggered: %s\n",
		ev.ShortURL, ev.LinkID, orNone(strings.Join(ev.Tags, ", ")), stamp(ev.TriggeredAt))
	b.WriteString("\n## Clicks vs baseline\n\n| | Clicks |\n|---|---|\n")
	fmt.Fprintf(&b, "| Current hour | %s |\n| Trailing 7-day hourly baseline | %s |\n| Multiplier | %s× |\n",
		grouped(ev.CurrentHourClicks), decimal(ev.BaselineHourlyClicks), decimal(mult))
	b.WriteString("\n## Top referrers\n\n")
	b.WriteString(topReferrers([]linsync.FiledEntry{{Event: ev}}))
	b.WriteString("\n## Suggested fix\n\n")
	fmt.Fprintf(&b, "%s\n", bandFixes[ev.Band])
	return title, b.String()
}

func renderTakeover(v IssueView) (string, string) {
	ev := v.Entries[len(v.Entries)-1].Event
	title := fmt.Sprintf("[%s] Domain takeover detected: %s", v.Prefix, ev.Domain)
	var b strings.Builder
	fmt.Fprintf(&b, "The custom domain **%s** looks taken over: it no longer serves your links.\n\n## Details\n\n", ev.Domain)
	fmt.Fprintf(&b, "- Domain: `%s`\n- Dangling record: %s\n- Detected: %s\n- Detail: %s\n",
		ev.Domain, orNone(codeOrEmpty(ev.DanglingRecord)), stamp(ev.DetectedAt), orNone(ev.Detail))
	links := map[string]bool{}
	var affected []string
	for _, e := range v.Entries {
		for _, l := range e.Event.AffectedLinks {
			if !links[l] {
				links[l] = true
				affected = append(affected, l)
			}
		}
	}
	fmt.Fprintf(&b, "\n## Affected short links (%d)\n\n", len(affected))
	for _, l := range affected {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	if len(affected) == 0 {
		b.WriteString("None reported.\n")
	}
	fmt.Fprintf(&b, "\n## Suggested fix\n\n%s\n", takeoverFix)
	return title, b.String()
}

func renderCreated(v IssueView) (string, string) {
	ev := v.Entries[0].Event
	title := fmt.Sprintf("[%s] New short link: %s", v.Prefix, pathOf(ev.ShortURL))
	var b strings.Builder
	b.WriteString("A short link was created; a routing rule asks for an audit issue for new links.\n\n## Link details\n\n")
	fmt.Fprintf(&b, "- Short link: %s\n- Destination: %s\n- Link id: `%s`\n- Owner: %s\n- Tags: %s\n- Created: %s\n",
		ev.ShortURL, orNone(ev.DestinationURL), ev.LinkID, orNone(ev.OwnerEmail), orNone(strings.Join(ev.Tags, ", ")),
		stamp(ev.CreatedAt))
	b.WriteString("\n## Suggested check\n\nConfirm the destination and the owner are expected, and that the link's tags match its campaign.\n")
	return title, b.String()
}

func renderScan(v IssueView) (string, string) {
	ev := v.Entries[len(v.Entries)-1].Event
	title := fmt.Sprintf("[%s] Link scan %s: %d flagged", v.Prefix, ev.ScanID, len(ev.Flagged))
	var b strings.Builder
	fmt.Fprintf(&b, "Scan run `%s` finished: %s links scanned, **%d flagged**.\n\n- Started: %s\n- Completed: %s\n",
		ev.ScanID, grouped(ev.LinksScanned), len(ev.Flagged), stamp(ev.StartedAt), stamp(ev.CompletedAt))
	b.WriteString("\n## Flagged links\n\n")
	if len(ev.Flagged) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString("| Short link | Destination | Failure |\n|---|---|---|\n")
		for _, f := range ev.Flagged {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(f.ShortURL), cell(f.DestinationURL),
				cell(failureCell(linsync.Event{FailureType: f.FailureType, FailureDetail: f.FailureDetail})))
		}
	}
	seen := map[string]bool{}
	for _, f := range ev.Flagged {
		seen[f.FailureType] = true
	}
	var fixes strings.Builder
	for _, ft := range linsync.FailureTypes {
		if seen[ft] {
			fmt.Fprintf(&fixes, "- **%s** (`%s`): %s\n", failureLabels[ft], ft, failureFixes[ft])
		}
	}
	if fixes.Len() > 0 {
		b.WriteString("\n## Suggested fix\n\n")
		b.WriteString(fixes.String())
	}
	return title, b.String()
}

func renderDigest(v IssueView) (string, string) {
	end := v.WindowStart.Add(time.Hour)
	if v.WindowEnd != nil {
		end = *v.WindowEnd
	}
	span := fmt.Sprintf("%s–%s UTC", v.WindowStart.UTC().Format("2006-01-02 15:04"), end.UTC().Format("15:04"))
	title := fmt.Sprintf("[%s] Issue cap reached: %d events in the digest for %s", v.Prefix, len(v.Entries), span)
	var b strings.Builder
	fmt.Fprintf(&b, "The creation cap of **%d new issues per hour** for this team was reached for %s. "+
		"The %d events below would each have opened or been filed in a new issue; they are collected in this digest instead, "+
		"which is updated in place for the rest of the hour.\n\n## Events\n\n", v.CapPerHour, span, len(v.Entries))
	for _, e := range v.Entries[:min(len(v.Entries), listedEntries)] {
		fmt.Fprintf(&b, "- %s\n", digestLine(e.Event))
	}
	moreEntries(&b, v, "events")
	return title, b.String()
}

func digestLine(ev linsync.Event) string {
	switch ev.Type {
	case linsync.EventLinkBroken:
		return fmt.Sprintf("`%s` %s → %s (%s)", ev.Type, ev.ShortURL, hostOf(ev.DestinationURL), failureSummary(ev))
	case linsync.EventClickThreshold:
		return fmt.Sprintf("`%s` %s on %s (%s× baseline)", ev.Type, ev.Band, ev.ShortURL, decimal(multiplier(ev)))
	case linsync.EventDomainTakeover:
		return fmt.Sprintf("`%s` %s", ev.Type, ev.Domain)
	case linsync.EventLinkCreated:
		return fmt.Sprintf("`%s` %s → %s", ev.Type, ev.ShortURL, ev.DestinationURL)
	case linsync.EventScanComplete:
		return fmt.Sprintf("`%s` scan %s, %d flagged", ev.Type, ev.ScanID, len(ev.Flagged))
	}
	return "`" + ev.Type + "`"
}

func previous(b *strings.Builder, p *linsync.FiledIssue) {
	if p == nil {
		return
	}
	ref := p.Identifier
	if ref == "" {
		ref = "the previous issue"
	}
	if p.URL != "" {
		ref = fmt.Sprintf("[%s](%s)", ref, p.URL)
	}
	fmt.Fprintf(b, "\nThis continues %s, which covered the window %s to %s.\n", ref, stamp(&p.WindowStart), stamp(p.WindowEnd))
}

func lastWorking(entries []linsync.FiledEntry) string {
	var latest, earliest *linsync.Event
	unknown := 0
	for i := range entries {
		ev := &entries[i].Event
		if ev.LastWorkingAt == nil {
			unknown++
			continue
		}
		if latest == nil || ev.LastWorkingAt.After(*latest.LastWorkingAt) {
			latest = ev
		}
		if earliest == nil || ev.LastWorkingAt.Before(*earliest.LastWorkingAt) {
			earliest = ev
		}
	}
	if latest == nil {
		return "Unknown: the scanner reported no last working time.\n"
	}
	var b strings.Builder
	if len(entries) == 1 {
		fmt.Fprintf(&b, "Last seen working %s", stamp(latest.LastWorkingAt))
		if latest.DetectedAt != nil {
			fmt.Fprintf(&b, "; found broken %s, %s later", stamp(latest.DetectedAt), span(latest.DetectedAt.Sub(*latest.LastWorkingAt)))
		}
		b.WriteString(".\n")
		return b.String()
	}
	fmt.Fprintf(&b, "- Most recently working: %s (%s)\n- Longest broken: since %s (%s)\n",
		stamp(latest.LastWorkingAt), latest.ShortURL, stamp(earliest.LastWorkingAt), earliest.ShortURL)
	if unknown > 0 {
		fmt.Fprintf(&b, "- No last working time reported for %d links\n", unknown)
	}
	return b.String()
}

func topReferrers(entries []linsync.FiledEntry) string {
	sums := map[string]int64{}
	for _, e := range entries {
		for _, r := range e.Event.TopReferrers {
			sums[r.Host] += r.Clicks
		}
	}
	refs := make([]linsync.Referrer, 0, len(sums))
	for h, c := range sums {
		refs = append(refs, linsync.Referrer{Host: h, Clicks: c})
	}
	slices.SortFunc(refs, func(a, b linsync.Referrer) int {
		return cmp.Or(cmp.Compare(b.Clicks, a.Clicks), cmp.Compare(a.Host, b.Host))
	})
	if len(refs) == 0 {
		return "No referrer data reported.\n"
	}
	var b strings.Builder
	for i, r := range refs[:min(3, len(refs))] {
		fmt.Fprintf(&b, "%d. %s: %s clicks\n", i+1, r.Host, grouped(r.Clicks))
	}
	return b.String()
}

func latestTrigger(entries []linsync.FiledEntry) linsync.Event {
	best := entries[0].Event
	for _, e := range entries[1:] {
		if e.Event.TriggeredAt != nil && (best.TriggeredAt == nil || !e.Event.TriggeredAt.Before(*best.TriggeredAt)) {
			best = e.Event
		}
	}
	return best
}

func multiplier(ev linsync.Event) float64 {
	if ev.Multiplier > 0 || ev.BaselineHourlyClicks <= 0 {
		return ev.Multiplier
	}
	return float64(ev.CurrentHourClicks) / ev.BaselineHourlyClicks
}

// failureSummary is the short failure shown in titles: the scanner's detail up to its first comma ("502 Bad
// Gateway"), or the failure type's name.
func failureSummary(ev linsync.Event) string {
	if d, _, _ := strings.Cut(ev.FailureDetail, ","); strings.TrimSpace(d) != "" {
		return strings.TrimSpace(d)
	}
	if l, ok := failureLabels[ev.FailureType]; ok {
		return l
	}
	return ev.FailureType
}

func failureCell(ev linsync.Event) string {
	if ev.FailureDetail == "" {
		return failureLabels[ev.FailureType] + " (" + ev.FailureType + ")"
	}
	return ev.FailureDetail + " (" + ev.FailureType + ")"
}

// pathOf returns a short link's path ("/spring-launch"), or the link itself when it has none.
func pathOf(short string) string {
	u, err := url.Parse(short)
	if err != nil || u.Path == "" || u.Path == "/" {
		return short
	}
	return u.Path
}

// hostOf returns a URL's host, lower-cased, without a port.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.ToLower(u.Hostname())
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func codeOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// span renders a duration in days and hours for people.
func span(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	switch {
	case days > 0:
		return fmt.Sprintf("%d d %d h", days, hours)
	case hours > 0:
		return fmt.Sprintf("%d h", hours)
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
}

// grouped writes an integer with thousands separators.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// decimal writes a number with at most two decimals and no trailing zeros.
func decimal(f float64) string {
	return strconv.FormatFloat(float64(int64(f*100+0.5))/100, 'f', -1, 64)
}

// delta is the change from baseline to current as a signed percentage.
func delta(current, baseline float64) string {
	if baseline == 0 {
		if current == 0 {
			return "no change"
		}
		return "no baseline to compare with"
	}
	pct := (current - baseline) / baseline * 100
	sign := "+"
	if pct < 0 {
		sign = "-"
		pct = -pct
	}
	return fmt.Sprintf("%s%s%%", sign, strconv.FormatFloat(float64(int64(pct*10+0.5))/10, 'f', 1, 64))
}
