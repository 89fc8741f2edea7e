package linsync

import "time"

// Kinds of inbox item. Each kind is handed to its workflow in its own way: a delivery and an event start theirs
// (once per ID), a question change signals its question's entity workflow (signal-with-start).
const (
	InboxDelivery = "delivery"
	InboxEvent    = "event"
	InboxQuestion = "question"
)

// DefaultRetryHorizon is how long Linear keeps retrying a delivery (1 min, 1 h and 6 h after the first attempt,
// with the first attempt's body): ingress accepts an unseen signed body that old, and keeps the content records of
// accepted bodies at least that long, so a re-posted body is a duplicate for as long as it could be accepted.
const DefaultRetryHorizon = 8 * time.Hour

// InboxItem is verified work written to Postgres before it was acknowledged: the durable record that its workflow
// must start. The API's dispatcher starts it at once; the worker's drainer starts whatever the dispatcher did not.
type InboxItem struct {
	ID          int64
	WorkspaceID string
	Kind        string
	// Key identifies the item within its kind and workspace: the Linear-Delivery id, the event's idempotency key,
	// the question id.
	Key string
	// ContentHash is the SHA-256 of a delivery's signed body, unique per workspace; nil for the other kinds.
	ContentHash []byte
	WorkflowID  string
	// Input is what the workflow is started (or signalled) with, as JSON; it is dropped once the workflow started.
	Input []byte
	// TraceContext is the W3C traceparent of the request that brought the item, so the workflow's trace continues
	// the request's.
	TraceContext string
	ReceivedAt   time.Time
	// DrainAfter leaves the item to the API's dispatcher until then; the drainer takes it afterwards.
	DrainAfter time.Time
	// KeepUntil is when the record may be pruned once its workflow started.
	KeepUntil time.Time
	StartedAt *time.Time
	Attempts  int
	LastError string
}

// InboxStats describes the work waiting in the inbox for its workflow to start.
type InboxStats struct {
	Depth            int64      `json:"depth"`
	OldestReceivedAt *time.Time `json:"oldest_received_at"`
	OldestAgeSeconds float64    `json:"oldest_age_seconds"`
}
