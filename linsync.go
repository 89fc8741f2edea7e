// Package linsync is linsync's domain: the types every part shares and the pure rules on them, with no I/O and no
// import of linsync's other packages, so each of them may import it. By subject: workspaces, tokens, connections,
// deliveries, dead letters and the error type (linsync.go); questions and their sync state (questions.go) with the
// per-field merge rules of two-way sync (merge.go); monitoring events and routing (events.go); filed issues and
// their aggregation (filing.go); Linear access (access.go); reconciliation (reconcile.go).
//
// The packages beside it each wrap one role or one dependency: api (HTTP), workflows (orchestration),
// activities (side effects), worker (registration), linear (Linear's API and webhooks) and postgres (storage: SQL
// only).
package linsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Error codes, each mapped to one HTTP status by the api package.
const (
	ECONFLICT       = "conflict"
	EINTERNAL       = "internal"
	EINVALID        = "invalid"
	ENOTFOUND       = "not_found"
	EUNAUTHORIZED   = "unauthorized"
	EFORBIDDEN      = "forbidden"
	EUNAVAILABLE    = "unavailable"
	ETOOLARGE       = "too_large"
	EUNPROCESSABLE  = "unprocessable"
	EEXPIRED        = "expired"
	ENOTIMPLEMENTED = "not_implemented"
	// EGONE: what was given once was already taken.
	EGONE = "gone"
)

// Error is an application error with a machine-readable code and a message safe to show a caller.
type Error struct {
	Code    string
	Message string
	// Field is the JSON path of the offending input, when there is one.
	Field string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("linsync error: code=%s field=%s message=%s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("linsync error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the message of the first *Error in err's chain, or a generic message that discloses nothing.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "internal error"
	}
}

// slugShape is what a workspace slug may look like: lower-case letters, digits and dashes, 1-63 of them, starting
// with a letter or digit (the database checks the same).
var slugShape = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// uuidShape is a UUID as Postgres prints one; a slug of that shape could name another workspace's id.
var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$`)

// CheckSlug refuses a slug linsync cannot use. Workspaces are found by slug or id alike, so a slug shaped like a
// UUID is refused: it would make "the workspace whose slug or id is X" ambiguous.
func CheckSlug(slug string) error {
	switch {
	case !slugShape.MatchString(slug):
		return &Error{Code: EINVALID, Field: "slug",
			Message: "slug must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit"}
	case uuidShape.MatchString(slug):
		return &Error{Code: EINVALID, Field: "slug", Message: "slug must not look like a UUID (workspaces are also found by id)"}
	}
	return nil
}

// Page asks for one page of a list: at most Limit items after the position Cursor names ("" for the first page). A
// cursor is opaque: it is always one a previous page returned.
type Page struct {
	Limit  int
	Cursor string
}

// Workspace is a tenant: one customer's Linear organization(s), credentials, rules and data.
type Workspace struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// LinearWebhook is a Linear webhook that posts to linsync, as stored (its secret never leaves the store in clear
// except to verify signatures).
type LinearWebhook struct {
	ID              string    `json:"id"`
	WorkspaceID     string    `json:"workspace_id"`
	OrganizationID  string    `json:"organization_id"`
	TeamID          string    `json:"team_id,omitempty"`
	LinearWebhookID string    `json:"linear_webhook_id,omitempty"`
	SecretLast4     string    `json:"secret_last4"`
	CreatedAt       time.Time `json:"created_at"`
}

// WebhookVerifier is what ingress needs to check one Linear webhook's deliveries: the workspace it belongs to, the
// webhook's id in Linear (when known), and the secrets currently accepted for it (the current one; during a
// rotation's grace window the previous one; while a rotation waits for Linear's answer the pending one). The store
// hands them out Sealed; ingress opens (Secrets) only those of the webhooks it chose to check.
type WebhookVerifier struct {
	ID              string
	WorkspaceID     string
	WorkspaceSlug   string
	OrganizationID  string
	TeamID          string
	LinearWebhookID string
	Sealed          [][]byte
	Secrets         [][]byte
}

// Delivery outcomes recorded for a Linear webhook delivery.
const (
	OutcomeProcessed   = "processed"
	OutcomeIgnored     = "ignored"
	OutcomeUnknownType = "unknown_type"
	OutcomeFailed      = "failed"
	// OutcomeUnclaimed: workspaces of the organization claim Linear teams, and none claims the delivery's team.
	OutcomeUnclaimed = "unclaimed"
	// OutcomeDuplicate is a delivery started directly (the inbox was unreachable) whose signed body another
	// delivery had already brought: it ran nothing.
	OutcomeDuplicate = "duplicate"
)

// Delivery is one Linear webhook delivery as recorded after its workflow handled it.
type Delivery struct {
	DeliveryID       string     `json:"delivery_id"`
	WorkspaceID      string     `json:"workspace_id"`
	OrganizationID   string     `json:"organization_id"`
	EventType        string     `json:"event_type"`
	Action           string     `json:"action"`
	EntityID         string     `json:"entity_id"`
	WebhookID        string     `json:"webhook_id"`
	WebhookTimestamp *time.Time `json:"webhook_timestamp,omitempty"`
	WorkflowID       string     `json:"workflow_id"`
	RunID            string     `json:"run_id"`
	Outcome          string     `json:"outcome"`
	Detail           string     `json:"detail,omitempty"`
	ReceivedAt       time.Time  `json:"received_at"`
	ProcessedAt      time.Time  `json:"processed_at"`
}

// Token scopes. ScopeAdmin grants every other scope.
const (
	ScopeAdmin          = "admin"
	ScopeEventsWrite    = "events:write"
	ScopeQuestionsWrite = "questions:write"
)

// Scopes lists every scope a token may carry.
var Scopes = []string{ScopeAdmin, ScopeEventsWrite, ScopeQuestionsWrite}

// APIToken is a workspace's API token as stored: the secret itself is shown once at creation and kept only as a hash.
type APIToken struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspace_id"`
	Name        string     `json:"name"`
	Scopes      []string   `json:"scopes"`
	Last4       string     `json:"last4"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// HasScope reports whether the token grants scope.
func (t *APIToken) HasScope(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
	}
	return false
}

// Linear connection auth kinds and statuses.
const (
	AuthAPIKey = "api_key"
	AuthOAuth  = "oauth"

	ConnectionActive       = "active"
	ConnectionRevoked      = "revoked"
	ConnectionDisconnected = "disconnected"
	// ConnectionNeedsReconnect: Linear refused the stored credential (a personal API key whose owner left, an OAuth
	// grant revoked in Linear). Work for the workspace waits, instead of failing, until an admin connects again.
	ConnectionNeedsReconnect = "needs_reconnect"
)

// ConnectionPaused reports whether work for a connection in status waits for a reconnect rather than failing: Linear
// refused its credential or its grant, which only an admin connecting again can repair. A disconnected workspace
// was disconnected on purpose, so its work fails.
func ConnectionPaused(status string) bool {
	return status == ConnectionNeedsReconnect || status == ConnectionRevoked
}

// LinearConnection is a workspace's connection to Linear, without its credential.
type LinearConnection struct {
	ID                   string     `json:"id"`
	WorkspaceID          string     `json:"workspace_id"`
	OrganizationID       string     `json:"organization_id"`
	OrganizationName     string     `json:"organization_name"`
	AuthKind             string     `json:"auth_kind"`
	CredentialLast4      string     `json:"credential_last4"`
	AccessTokenExpiresAt *time.Time `json:"access_token_expires_at,omitempty"`
	OAuthScopes          []string   `json:"oauth_scopes,omitempty"`
	CredentialVersion    int        `json:"-"`
	ActorUserID          string     `json:"actor_user_id"`
	ActorName            string     `json:"actor_name"`
	DefaultTeamID        string     `json:"default_team_id"`
	DefaultPriority      int        `json:"default_priority"`
	DefaultLabels        []string   `json:"default_labels"`
	Status               string     `json:"status"`
	StatusReason         string     `json:"status_reason,omitempty"`
	// StatusChangedAt is when the status last changed (a connect, Linear's refusal, a revocation, a disconnect).
	StatusChangedAt *time.Time `json:"status_changed_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	// RateLimit is the credential's rate-limit state as every process calling Linear with it last noted it.
	RateLimit SharedRateLimit `json:"-"`
}

// RateWindow is one rate-limit window Linear reports in response headers.
type RateWindow struct {
	// Kind is "requests", "complexity" or "endpoint".
	Kind      string    `json:"kind"`
	Limit     float64   `json:"limit"`
	Remaining float64   `json:"remaining"`
	Reset     time.Time `json:"reset"`
}

// SharedRateLimit is a Linear credential's rate-limit state shared by every process that calls Linear with it:
// until when Linear refused it, and its windows when they ran low. Each process learns it with the connection, so
// a refusal one process saw keeps the others from sending before the reset, and the few requests left in a window
// are paced among them all.
type SharedRateLimit struct {
	BlockedUntil time.Time    `json:"blocked_until,omitzero"`
	Windows      []RateWindow `json:"windows,omitempty"`
}

// KindQuestionPush is the dead-letter kind of a question whose push to Linear failed for good; replaying it asks
// the question's workflow to push again.
const KindQuestionPush = "QuestionPush"

// Dead-letter statuses.
const (
	DeadLetterOpen     = "open"
	DeadLetterReplayed = "replayed"
)

// DeadLetter is work that failed for good: the workflow's input, why it failed and where to look in Temporal.
type DeadLetter struct {
	ID           string          `json:"id"`
	WorkspaceID  string          `json:"workspace_id,omitempty"`
	Kind         string          `json:"kind"`
	WorkflowID   string          `json:"workflow_id"`
	RunID        string          `json:"run_id"`
	TaskQueue    string          `json:"task_queue"`
	Input        json.RawMessage `json:"input"`
	ErrorClass   string          `json:"error_class"`
	ErrorMessage string          `json:"error_message"`
	Attempts     int             `json:"attempts"`
	Failures     int             `json:"failures"`
	FirstFailed  time.Time       `json:"first_failed_at"`
	LastFailed   time.Time       `json:"last_failed_at"`
	UIURL        string          `json:"temporal_ui_url"`
	Status       string          `json:"status"`
	ReplayRunID  string          `json:"replay_run_id,omitempty"`
	ReplayedAt   *time.Time      `json:"replayed_at,omitempty"`
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	WorkspaceID string
	Kind        string
	ErrorClass  string
	Status      string
	Since       time.Time
	Until       time.Time
	// After is the pagination cursor: the id of the last row of the previous page.
	After string
	Limit int
}
