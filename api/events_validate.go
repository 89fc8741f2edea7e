package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/linsync/linsync"
)

// Bounds on event fields, generous for real monitors and small enough to keep Temporal payloads far from 2 MB.
const (
	maxKeyLen       = 200
	maxIDLen        = 200
	maxTextLen      = 2000
	maxURLLen       = 2048
	maxTags         = 50
	maxTagLen       = 100
	maxReferrers    = 50
	maxFlaggedLinks = 2000
	maxAffected     = 2000
)

// fieldError is one problem with one field of a request, named by its JSON path.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (f fieldError) err() error {
	return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: f.Field, Message: f.Message}
}

// eventWire is an event as monitors send it. Fields of other types, and unknown fields, are ignored: monitors add
// fields over time (the seed's payloads are abridged), and one unknown field must not lose a broken-link report.
type eventWire struct {
	Event          string         `json:"event"`
	ID             string         `json:"id"`
	EventID        string         `json:"event_id"`
	IdempotencyKey string         `json:"idempotency_key"`
	LinkID         string         `json:"link_id"`
	ShortURL       string         `json:"short_url"`
	DestinationURL string         `json:"destination_url"`
	Tags           []string       `json:"tags"`
	OwnerEmail     string         `json:"owner_email"`
	TopReferrers   []referrerWire `json:"top_referrers"`

	FailureType   string  `json:"failure_type"`
	FailureDetail string  `json:"failure_detail"`
	LastWorkingAt *string `json:"last_working_at"`
	DetectedAt    *string `json:"detected_at"`
	ClicksLast7d  *int64  `json:"clicks_last_7d"`
	ClicksLast24h *int64  `json:"clicks_last_24h"`

	Band                 string   `json:"band"`
	CurrentHourClicks    *int64   `json:"current_hour_clicks"`
	BaselineHourlyClicks *float64 `json:"baseline_hourly_clicks"`
	Multiplier           *float64 `json:"multiplier"`
	TriggeredAt          *string  `json:"triggered_at"`

	CreatedAt *string `json:"created_at"`

	Domain         string   `json:"domain"`
	Detail         string   `json:"detail"`
	DanglingRecord string   `json:"dangling_record"`
	AffectedLinks  []string `json:"affected_short_urls"`

	ScanID       string        `json:"scan_id"`
	StartedAt    *string       `json:"started_at"`
	CompletedAt  *string       `json:"completed_at"`
	LinksScanned *int64        `json:"links_scanned"`
	Flagged      []flaggedWire `json:"flagged"`
}

type referrerWire struct {
	Host   string `json:"host"`
	Clicks int64  `json:"clicks"`
}

type flaggedWire struct {
	LinkID         string `json:"link_id"`
	ShortURL       string `json:"short_url"`
	DestinationURL string `json:"destination_url"`
	FailureType    string `json:"failure_type"`
	FailureDetail  string `json:"failure_detail"`
}

// eventChecker collects every problem of one event, each under its full JSON path.
type eventChecker struct {
	prefix string
	errs   []fieldError
}

func (v *eventChecker) path(field string) string {
	if v.prefix == "" {
		return field
	}
	return v.prefix + "." + field
}

func (v *eventChecker) fail(field, format string, args ...any) {
	v.errs = append(v.errs, fieldError{Field: v.path(field), Message: fmt.Sprintf(format, args...)})
}

func (v *eventChecker) required(field, value string) bool {
	if strings.TrimSpace(value) == "" {
		v.fail(field, "%s is required", field)
		return false
	}
	return true
}

func (v *eventChecker) text(field, value string, limit int) {
	if len(value) > limit {
		v.fail(field, "%s is longer than %d bytes", field, limit)
	}
}

// link checks an absolute http(s) URL and returns its host.
func (v *eventChecker) link(field, value string, required bool) string {
	if value == "" {
		if required {
			v.fail(field, "%s is required", field)
		}
		return ""
	}
	u, err := url.Parse(value)
	switch {
	case len(value) > maxURLLen:
		v.fail(field, "%s is longer than %d bytes", field, maxURLLen)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		v.fail(field, "%s must be an absolute http or https URL", field)
	default:
		return strings.ToLower(u.Hostname())
	}
	return ""
}

func (v *eventChecker) stamp(field string, value *string) *time.Time {
	if value == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339, *value)
	if err != nil {
		v.fail(field, "%s must be an RFC 3339 timestamp such as 2026-06-04T03:11:42Z", field)
		return nil
	}
	t = t.UTC()
	return &t
}

func (v *eventChecker) count(field string, value *int64) int64 {
	if value == nil {
		return 0
	}
	if *value < 0 {
		v.fail(field, "%s must not be negative", field)
	}
	return *value
}

func (v *eventChecker) oneOf(field, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.fail(field, "%s must be one of %s", field, strings.Join(allowed, ", "))
	}
}

// decodeEvent decodes and validates one event. prefix is the event's path in the request ("items[3]" in a batch);
// headerKey, when set, is the idempotency key from the header, which wins over the event's own id. Times missing
// from time-keyed events are set to received, so routing (which keys click thresholds by hour) is deterministic.
func decodeEvent(raw json.RawMessage, prefix, headerKey string, received time.Time) (string, linsync.Event, []fieldError) {
	v := &eventChecker{prefix: prefix}
	var w eventWire
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			v.fail(te.Field, "%s must be %s", te.Field, jsonKind(te.Type.Kind().String()))
		case errors.As(err, &te):
			v.errs = append(v.errs, fieldError{Field: prefix, Message: "an event must be a JSON object"})
		case errors.As(err, &se):
			v.errs = append(v.errs, fieldError{Field: prefix, Message: "malformed JSON: " + err.Error()})
		default:
			v.errs = append(v.errs, fieldError{Field: prefix, Message: "invalid event: " + err.Error()})
		}
		return "", linsync.Event{}, v.errs
	}

	key := headerKey
	keyField := headerIdempotencyKey
	for _, c := range []struct{ field, value string }{{"idempotency_key", w.IdempotencyKey}, {"id", w.ID}, {"event_id", w.EventID}} {
		if key == "" && c.value != "" {
			key, keyField = c.value, v.path(c.field)
		}
	}
	switch {
	case key == "":
		v.errs = append(v.errs, fieldError{Field: v.path("idempotency_key"),
			Message: "an idempotency key is required: the Idempotency-Key header, or the event's idempotency_key, id or event_id"})
	case len(key) > maxKeyLen || strings.ContainsFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.errs = append(v.errs, fieldError{Field: keyField,
			Message: fmt.Sprintf("the idempotency key must be 1 to %d characters without spaces or control characters", maxKeyLen)})
	}

	ev := linsync.Event{Type: w.Event, LinkID: w.LinkID, ShortURL: w.ShortURL, DestinationURL: w.DestinationURL,
		OwnerEmail: w.OwnerEmail, FailureType: w.FailureType, FailureDetail: w.FailureDetail, Band: w.Band,
		Domain: strings.ToLower(strings.TrimSuffix(w.Domain, ".")), Detail: w.Detail, DanglingRecord: w.DanglingRecord,
		ScanID: w.ScanID}
	if !v.required("event", w.Event) {
		return key, ev, v.errs
	}
	v.oneOf("event", w.Event, linsync.EventTypes)

	// Fields every type may carry.
	if len(w.Tags) > maxTags {
		v.fail("tags", "at most %d tags", maxTags)
	}
	for i, t := range w.Tags {
		if t = strings.TrimSpace(t); t == "" || len(t) > maxTagLen {
			v.fail("tags["+strconv.Itoa(i)+"]", "a tag is 1 to %d characters", maxTagLen)
			continue
		}
		ev.Tags = append(ev.Tags, t)
	}
	if len(w.TopReferrers) > maxReferrers {
		v.fail("top_referrers", "at most %d referrers", maxReferrers)
	}
	for i, r := range w.TopReferrers {
		p := "top_referrers[" + strconv.Itoa(i) + "]"
		if strings.TrimSpace(r.Host) == "" {
			v.fail(p+".host", "%s.host is required", p)
		}
		if r.Clicks < 0 {
			v.fail(p+".clicks", "%s.clicks must not be negative", p)
		}
		ev.TopReferrers = append(ev.TopReferrers, linsync.Referrer{Host: strings.TrimSpace(r.Host), Clicks: r.Clicks})
	}
	v.text("owner_email", w.OwnerEmail, 320)
	v.text("link_id", w.LinkID, maxIDLen)
	v.text("failure_detail", w.FailureDetail, maxTextLen)
	v.text("detail", w.Detail, maxTextLen)
	v.text("dangling_record", w.DanglingRecord, maxTextLen)

	switch w.Event {
	case linsync.EventLinkBroken:
		v.required("link_id", w.LinkID)
		v.link("short_url", w.ShortURL, true)
		ev.DestinationHost = v.link("destination_url", w.DestinationURL, true)
		if v.required("failure_type", w.FailureType) {
			v.oneOf("failure_type", w.FailureType, linsync.FailureTypes)
		}
		ev.LastWorkingAt = v.stamp("last_working_at", w.LastWorkingAt)
		ev.DetectedAt = v.stamp("detected_at", w.DetectedAt)
		ev.ClicksLast7d = v.count("clicks_last_7d", w.ClicksLast7d)
		ev.ClicksLast24h = v.count("clicks_last_24h", w.ClicksLast24h)
	case linsync.EventClickThreshold:
		v.required("link_id", w.LinkID)
		v.link("short_url", w.ShortURL, true)
		if v.required("band", w.Band) {
			v.oneOf("band", w.Band, linsync.Bands)
		}
		if w.CurrentHourClicks == nil {
			v.fail("current_hour_clicks", "current_hour_clicks is required")
		}
		ev.CurrentHourClicks = v.count("current_hour_clicks", w.CurrentHourClicks)
		switch {
		case w.BaselineHourlyClicks == nil:
			v.fail("baseline_hourly_clicks", "baseline_hourly_clicks is required")
		case *w.BaselineHourlyClicks < 0:
			v.fail("baseline_hourly_clicks", "baseline_hourly_clicks must not be negative")
		default:
			ev.BaselineHourlyClicks = *w.BaselineHourlyClicks
		}
		if w.Multiplier != nil {
			if *w.Multiplier < 0 {
				v.fail("multiplier", "multiplier must not be negative")
			}
			ev.Multiplier = *w.Multiplier
		}
		ev.TriggeredAt = v.stamp("triggered_at", w.TriggeredAt)
		if ev.TriggeredAt == nil {
			ev.TriggeredAt = &received
		}
	case linsync.EventLinkCreated:
		v.required("link_id", w.LinkID)
		v.link("short_url", w.ShortURL, true)
		ev.DestinationHost = v.link("destination_url", w.DestinationURL, false)
		ev.CreatedAt = v.stamp("created_at", w.CreatedAt)
	case linsync.EventDomainTakeover:
		if v.required("domain", w.Domain) && (len(w.Domain) > 253 || strings.ContainsAny(w.Domain, " /:@")) {
			v.fail("domain", "domain must be a host name such as links.example.com")
		}
		ev.DetectedAt = v.stamp("detected_at", w.DetectedAt)
		if ev.DetectedAt == nil {
			ev.DetectedAt = &received
		}
		if len(w.AffectedLinks) > maxAffected {
			v.fail("affected_short_urls", "at most %d affected links", maxAffected)
		}
		for i, l := range w.AffectedLinks {
			v.link("affected_short_urls["+strconv.Itoa(i)+"]", l, true)
		}
		ev.AffectedLinks = w.AffectedLinks
	case linsync.EventScanComplete:
		if v.required("scan_id", w.ScanID) {
			v.text("scan_id", w.ScanID, maxIDLen)
		}
		ev.StartedAt = v.stamp("started_at", w.StartedAt)
		ev.CompletedAt = v.stamp("completed_at", w.CompletedAt)
		ev.LinksScanned = v.count("links_scanned", w.LinksScanned)
		if len(w.Flagged) > maxFlaggedLinks {
			v.fail("flagged", "at most %d flagged links", maxFlaggedLinks)
		}
		for i, f := range w.Flagged {
			p := "flagged[" + strconv.Itoa(i) + "]"
			v.link(p+".short_url", f.ShortURL, true)
			v.link(p+".destination_url", f.DestinationURL, false)
			if f.FailureType != "" {
				v.oneOf(p+".failure_type", f.FailureType, linsync.FailureTypes)
			}
			ev.Flagged = append(ev.Flagged, linsync.FlaggedLink(f))
		}
	}
	return key, ev, v.errs
}
