package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
)

// Event types a monitor can submit.
const (
	EventLinkBroken      = "link.broken"
	EventClickThreshold  = "link.click_threshold"
	EventLinkCreated     = "link.created"
	EventDomainTakeover  = "domain.takeover_detected"
	EventScanComplete    = "link.scan_complete"
	EventKindDigest      = "digest"
	DefaultTitlePrefix   = "linsync"
	maxRoutingRules      = 200
	defaultCapPerHour    = 20
	defaultDebounce      = 5 * time.Second
	defaultBrokenWindow  = 24 * time.Hour
	defaultFiledPageSize = 20
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
// loaded by one function, EventRouting, for filing and for simulation alike.
type RoutingContext struct {
	WorkspaceID     string        `json:"workspace_id"`
	Rules           []RoutingRule `json:"rules"`
	Settings        EventSettings `json:"settings"`
	DefaultTeamID   string        `json:"default_team_id"`
	DefaultLabels   []string      `json:"default_labels"`
	DefaultPriority int           `json:"default_priority"`
	// Duplicate is set by ClaimEventReceipt when the event was already handled.
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

// EventSettings returns a workspace's event settings, the defaults when it saved none.
func (db *DB) EventSettings(ctx context.Context, workspaceID string) (EventSettings, error) {
	s := DefaultEventSettings()
	var window, debounce int64
	var updated time.Time
	err := db.pool.QueryRow(ctx, `SELECT title_prefix, broken_link_window_seconds, creation_cap_per_hour, tag_labels,
		debounce_ms, updated_at FROM event_settings WHERE workspace_id = $1`, workspaceID).
		Scan(&s.TitlePrefix, &window, &s.CreationCapPerHour, &s.TagLabels, &debounce, &updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s, nil
	case err != nil:
		return s, fmt.Errorf("query event settings of workspace %s: %w", workspaceID, err)
	}
	s.BrokenLinkWindow = time.Duration(window) * time.Second
	s.Debounce = time.Duration(debounce) * time.Millisecond
	s.UpdatedAt = &updated
	return s, nil
}

// SaveEventSettings stores a workspace's event settings (validated by the caller; the table re-checks bounds).
func (db *DB) SaveEventSettings(ctx context.Context, workspaceID string, s EventSettings) (EventSettings, error) {
	if s.TagLabels == nil {
		s.TagLabels = []string{}
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO event_settings (workspace_id, title_prefix, broken_link_window_seconds, creation_cap_per_hour,
			tag_labels, debounce_ms)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (workspace_id) DO UPDATE SET title_prefix = EXCLUDED.title_prefix,
			broken_link_window_seconds = EXCLUDED.broken_link_window_seconds,
			creation_cap_per_hour = EXCLUDED.creation_cap_per_hour, tag_labels = EXCLUDED.tag_labels,
			debounce_ms = EXCLUDED.debounce_ms, updated_at = now()`,
		workspaceID, s.TitlePrefix, int64(s.BrokenLinkWindow/time.Second), s.CreationCapPerHour, s.TagLabels,
		s.Debounce.Milliseconds())
	switch {
	case isCheckViolation(err):
		return s, linsync.Errorf(linsync.EUNPROCESSABLE, "event settings out of bounds")
	case err != nil:
		return s, fmt.Errorf("save event settings of workspace %s: %w", workspaceID, err)
	}
	return db.EventSettings(ctx, workspaceID)
}

// RoutingRules returns a workspace's ordered routing rules and their version (0 when none were saved).
func (db *DB) RoutingRules(ctx context.Context, workspaceID string) ([]RoutingRule, int, error) {
	var raw []byte
	var version int
	err := db.pool.QueryRow(ctx, `SELECT rules, version FROM routing_rules WHERE workspace_id = $1`, workspaceID).
		Scan(&raw, &version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return []RoutingRule{}, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("query routing rules of workspace %s: %w", workspaceID, err)
	}
	rules := []RoutingRule{}
	if err := json.Unmarshal(raw, &rules); err != nil {
		return nil, 0, fmt.Errorf("decode routing rules of workspace %s: %w", workspaceID, err)
	}
	return rules, version, nil
}

// SaveRoutingRules replaces a workspace's routing rules (validated by the caller) and returns the new version.
func (db *DB) SaveRoutingRules(ctx context.Context, workspaceID string, rules []RoutingRule) (int, error) {
	if len(rules) > maxRoutingRules {
		return 0, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "rules",
			Message: fmt.Sprintf("at most %d routing rules", maxRoutingRules)}
	}
	if rules == nil {
		rules = []RoutingRule{}
	}
	raw, err := json.Marshal(rules)
	if err != nil {
		return 0, fmt.Errorf("encode routing rules: %w", err)
	}
	var version int
	err = db.pool.QueryRow(ctx, `
		INSERT INTO routing_rules (workspace_id, rules) VALUES ($1, $2)
		ON CONFLICT (workspace_id) DO UPDATE SET rules = EXCLUDED.rules, version = routing_rules.version + 1,
			updated_at = now()
		RETURNING version`, workspaceID, raw).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("save routing rules of workspace %s: %w", workspaceID, err)
	}
	return version, nil
}

// EventRouting loads what routing an event needs: rules, settings and the Linear connection's defaults. A
// workspace without a Linear connection gets ENOTFOUND.
func (db *DB) EventRouting(ctx context.Context, workspaceID string) (*RoutingContext, error) {
	conn, err := db.FindConnection(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	rules, _, err := db.RoutingRules(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	s, err := db.EventSettings(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	labels := conn.DefaultLabels
	if labels == nil {
		labels = []string{}
	}
	return &RoutingContext{WorkspaceID: workspaceID, Rules: rules, Settings: s, DefaultTeamID: conn.DefaultTeamID,
		DefaultLabels: labels, DefaultPriority: conn.DefaultPriority}, nil
}

// CompletedEventKeys returns which of keys belong to events of the workspace that were handled completely.
func (db *DB) CompletedEventKeys(ctx context.Context, workspaceID string, keys []string) (map[string]bool, error) {
	rows, err := db.pool.Query(ctx, `SELECT idempotency_key FROM event_receipts
		WHERE workspace_id = $1 AND idempotency_key = ANY($2) AND completed_at IS NOT NULL`, workspaceID, keys)
	if err != nil {
		return nil, fmt.Errorf("query event receipts of workspace %s: %w", workspaceID, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan event receipts: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}

// ClaimEventReceipt records that the workflow run runID handles the event with key. It reports false when the
// event was already handled to completion (by an earlier run, e.g. one Temporal no longer remembers); a run that
// failed before completing leaves its claim open for the next one.
func (db *DB) ClaimEventReceipt(ctx context.Context, workspaceID, key, eventType, workflowID, runID string) (bool, error) {
	var owner string
	var completed *time.Time
	err := db.pool.QueryRow(ctx, `
		INSERT INTO event_receipts (workspace_id, idempotency_key, event_type, workflow_id, run_id)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (workspace_id, idempotency_key) DO UPDATE SET
			run_id = CASE WHEN event_receipts.completed_at IS NULL THEN EXCLUDED.run_id ELSE event_receipts.run_id END
		RETURNING run_id, completed_at`, workspaceID, key, eventType, workflowID, runID).Scan(&owner, &completed)
	if err != nil {
		return false, fmt.Errorf("claim event %s: %w", key, err)
	}
	return completed == nil || owner == runID, nil
}

// CompleteEventReceipt marks the event handled; later submissions of its key are duplicates forever.
func (db *DB) CompleteEventReceipt(ctx context.Context, workspaceID, key string) error {
	_, err := db.pool.Exec(ctx, `UPDATE event_receipts SET completed_at = coalesce(completed_at, now())
		WHERE workspace_id = $1 AND idempotency_key = $2`, workspaceID, key)
	if err != nil {
		return fmt.Errorf("complete event %s: %w", key, err)
	}
	return nil
}
