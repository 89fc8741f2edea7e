package linsync

import (
	"encoding/json"
	"time"
)

// Event types a monitor can submit.
const (
	EventLinkBroken     = "link.broken"
	EventClickThreshold = "link.click_threshold"
	EventLinkCreated    = "link.created"
	EventDomainTakeover = "domain.takeover_detected"
	EventScanComplete   = "link.scan_complete"
	EventKindDigest     = "digest"
	DefaultTitlePrefix  = "linsync"
	defaultCapPerHour   = 20
	defaultDebounce     = 5 * time.Second
	defaultBrokenWindow = 24 * time.Hour
)

// EventTypes lists every event type, in the order the API documents them.
var EventTypes = []string{EventLinkBroken, EventClickThreshold, EventLinkCreated, EventDomainTakeover, EventScanComplete}

// FailureTypes lists the failure types of link.broken.
var FailureTypes = []string{"http_4xx", "http_5xx", "tls_expired", "tls_self_signed", "dns_nxdomain", "parked_domain"}

// Bands lists the bands of link.click_threshold.
var Bands = []string{"spike", "cliff"}

// Referrer is one referring host and its clicks.
type Referrer struct {
	Host   string `json:"host"`
	Clicks int64  `json:"clicks"`
}

// FlaggedLink is one link a scan run flagged.
type FlaggedLink struct {
	LinkID         string `json:"link_id,omitempty"`
	ShortURL       string `json:"short_url"`
	DestinationURL string `json:"destination_url,omitempty"`
	FailureType    string `json:"failure_type,omitempty"`
	FailureDetail  string `json:"failure_detail,omitempty"`
}

// Event is a validated monitoring event. It is one struct for every type; each type uses its own fields (see the
// OpenAPI document), and it is stored as submitted so issues can be rendered again from the store.
type Event struct {
	Type           string `json:"event"`
	LinkID         string `json:"link_id,omitempty"`
	ShortURL       string `json:"short_url,omitempty"`
	DestinationURL string `json:"destination_url,omitempty"`
	// DestinationHost is the destination URL's host, lower-cased, set at intake; broken links are deduplicated by it.
	DestinationHost string     `json:"destination_host,omitempty"`
	Tags            []string   `json:"tags,omitempty"`
	OwnerEmail      string     `json:"owner_email,omitempty"`
	TopReferrers    []Referrer `json:"top_referrers,omitempty"`

	// link.broken
	FailureType   string     `json:"failure_type,omitempty"`
	FailureDetail string     `json:"failure_detail,omitempty"`
	LastWorkingAt *time.Time `json:"last_working_at,omitempty"`
	DetectedAt    *time.Time `json:"detected_at,omitempty"`
	ClicksLast7d  int64      `json:"clicks_last_7d,omitempty"`
	ClicksLast24h int64      `json:"clicks_last_24h,omitempty"`

	// link.click_threshold
	Band                 string     `json:"band,omitempty"`
	CurrentHourClicks    int64      `json:"current_hour_clicks,omitempty"`
	BaselineHourlyClicks float64    `json:"baseline_hourly_clicks,omitempty"`
	Multiplier           float64    `json:"multiplier,omitempty"`
	TriggeredAt          *time.Time `json:"triggered_at,omitempty"`

	// link.created
	CreatedAt *time.Time `json:"created_at,omitempty"`

	// domain.takeover_detected
	Domain         string   `json:"domain,omitempty"`
	Detail         string   `json:"detail,omitempty"`
	DanglingRecord string   `json:"dangling_record,omitempty"`
	AffectedLinks  []string `json:"affected_short_urls,omitempty"`

	// link.scan_complete
	ScanID       string        `json:"scan_id,omitempty"`
	StartedAt    *time.Time    `json:"started_at,omitempty"`
	CompletedAt  *time.Time    `json:"completed_at,omitempty"`
	LinksScanned int64         `json:"links_scanned,omitempty"`
	Flagged      []FlaggedLink `json:"flagged,omitempty"`
}

// RoutingRule sends matching events to a team with labels and a priority. Every criterion set must match (a rule
// with tag_glob matches when at least one tag matches); a default rule matches everything and must come last.
type RoutingRule struct {
	Name        string   `json:"name,omitempty"`
	TagGlob     string   `json:"tag_glob,omitempty"`
	FailureType string   `json:"failure_type,omitempty"`
	EventTypes  []string `json:"event_types,omitempty"`
	Default     bool     `json:"default,omitempty"`
	TeamID      string   `json:"team_id,omitempty"`
	Labels      []string `json:"labels,omitempty"`
	Priority    *int     `json:"priority,omitempty"`
	// FileLinkCreated asks for an audit issue for link.created events the rule matches; without it they are not filed.
	FileLinkCreated bool `json:"file_link_created,omitempty"`
}

// EventSettings configure event filing for a workspace.
type EventSettings struct {
	TitlePrefix string `json:"title_prefix"`
	// BrokenLinkWindow is how long broken links of one host go into the same issue.
	BrokenLinkWindow time.Duration `json:"-"`
	// CreationCapPerHour bounds the new issues per team and hour; past it events go into the hour's digest.
	CreationCapPerHour int      `json:"creation_cap_per_hour"`
	TagLabels          []string `json:"tag_labels"`
	// Debounce is how long an aggregated issue waits for more links before it is updated.
	Debounce  time.Duration `json:"-"`
	UpdatedAt *time.Time    `json:"updated_at,omitempty"`
}

// DefaultEventSettings are the settings of a workspace that has saved none.
func DefaultEventSettings() EventSettings {
	return EventSettings{TitlePrefix: DefaultTitlePrefix, BrokenLinkWindow: defaultBrokenWindow,
		CreationCapPerHour: defaultCapPerHour, TagLabels: []string{"paid", "organic"}, Debounce: defaultDebounce}
}

// RoutingContext is everything routing needs for a workspace: its rules, settings and connection defaults. It is
// loaded by one function, postgres.DB.EventRouting, for filing and for simulation alike.
type RoutingContext struct {
	WorkspaceID     string        `json:"workspace_id"`
	Rules           []RoutingRule `json:"rules"`
	Settings        EventSettings `json:"settings"`
	DefaultTeamID   string        `json:"default_team_id"`
	DefaultLabels   []string      `json:"default_labels"`
	DefaultPriority int           `json:"default_priority"`
	// Duplicate is set (postgres.DB.ClaimEventReceipt) when the event was already handled.
	Duplicate bool `json:"duplicate,omitempty"`
}

// MarshalJSON writes the durations as broken_link_window_seconds and debounce_ms, for the API and for Temporal
// payloads alike.
func (s EventSettings) MarshalJSON() ([]byte, error) {
	type plain EventSettings
	return json.Marshal(struct {
		plain
		BrokenLinkWindowSeconds int64 `json:"broken_link_window_seconds"`
		DebounceMS              int64 `json:"debounce_ms"`
	}{plain(s), int64(s.BrokenLinkWindow / time.Second), s.Debounce.Milliseconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *EventSettings) UnmarshalJSON(b []byte) error {
	type plain EventSettings
	var v struct {
		plain
		BrokenLinkWindowSeconds int64 `json:"broken_link_window_seconds"`
		DebounceMS              int64 `json:"debounce_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = EventSettings(v.plain)
	s.BrokenLinkWindow = time.Duration(v.BrokenLinkWindowSeconds) * time.Second
	s.Debounce = time.Duration(v.DebounceMS) * time.Millisecond
	return nil
}

// Decision is where routing sends an event: the matched rule, team, labels, priority and the key its issue is
// deduplicated by. The simulate endpoint shows it; filing follows it.
type Decision struct {
	// File is false when the event files nothing (a link.created no rule asks for).
	File   bool   `json:"file"`
	Reason string `json:"reason,omitempty"`
	// RuleIndex is the matched rule's position, -1 when none matched and the connection's defaults apply.
	RuleIndex int      `json:"rule_index"`
	RuleName  string   `json:"rule_name,omitempty"`
	TeamID    string   `json:"team_id"`
	Labels    []string `json:"labels"`
	Priority  int      `json:"priority"`
	DedupKey  string   `json:"dedup_key"`
	// WindowStart and WindowEnd bound a fixed window (a click threshold's hour); broken links open their window
	// when the host's first link arrives.
	WindowStart time.Time  `json:"window_start,omitzero"`
	WindowEnd   *time.Time `json:"window_end,omitempty"`
	// AggregatorID is the workflow that collects the event with others (broken links of one host).
	AggregatorID string `json:"aggregator_workflow_id,omitempty"`
}
