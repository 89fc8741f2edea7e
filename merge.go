package linsync

import (
	"slices"
	"strings"
	"time"
)

// Synced question fields, as stored in question_fields and named in audit entries.
const (
	FieldStatus   = "status"
	FieldAssignee = "assignee_email"
	FieldPriority = "priority"
	FieldTitle    = "title"
	FieldBody     = "body"
)

// SyncedFields lists the fields kept in step with Linear, in the order they are written.
var SyncedFields = []string{FieldStatus, FieldAssignee, FieldPriority, FieldTitle, FieldBody}

// LinearFields are the fields a Linear change may set; the body is written to the description but never read
// back, because the description also carries the asker and the link to the app.
var LinearFields = []string{FieldStatus, FieldAssignee, FieldPriority, FieldTitle}

// Sources of a field's value.
const (
	SourceApp    = "app"
	SourceLinear = "linear"
)

// Audit kinds.
const (
	AuditConflict       = "conflict"
	AuditStaleLinear    = "stale_linear_change"
	AuditStaleApp       = "stale_app_change"
	AuditUnmatchedEmail = "unmatched_email"
	AuditUnlinked       = "unlinked"
	AuditMoved          = "moved_team"
	AuditSyncFailed     = "sync_failed"
)

// FieldState is one synced field of a question with its versions. Value was set by the edit of Source at SourceAt;
// LinearValue is what Linear holds as of LinearAt (Linear's clock; zero when unknown), standing for SyncedValue
// (they differ only when Linear cannot represent the value, e.g. an assignee email that matches no Linear user).
// The field needs a write to Linear exactly when Value != SyncedValue.
//
// Pushing, PushValue and PushLinear are a write in flight: stored before the Linear call (like the pre-chosen issue
// and comment ids) and cleared when its result is recorded, so that the webhook of our own write is known by its
// value even when it overtakes the record and its actor cannot tell. Writes are Linear's updatedAt of linsync's last
// recorded writes of the field, so that a late webhook of one of them is known after later writes.
type FieldState struct {
	Value       string      `json:"value"`
	Source      string      `json:"source"`
	SourceAt    time.Time   `json:"source_at"`
	LinearValue string      `json:"linear_value"`
	SyncedValue string      `json:"synced_value"`
	LinearAt    time.Time   `json:"linear_at"`
	Pushing     bool        `json:"pushing,omitempty"`
	PushValue   string      `json:"push_value,omitempty"`
	PushLinear  string      `json:"push_linear,omitempty"`
	PushAt      time.Time   `json:"push_at,omitzero"`
	Writes      []time.Time `json:"-"`
}

// EchoSkew is how far Linear's clock may lag linsync's: the webhook of a write in flight is stamped after the write
// began (PushAt, linsync's clock), so an actorless webhook with the in-flight value stamped earlier than that, less
// EchoSkew, is a human edit, not our echo.
const EchoSkew = time.Second

// maxWrites is how many of its own writes per field linsync remembers: webhooks arrive within minutes, and a field
// is not written that often in that time.
const maxWrites = 8

// Dirty reports whether the field holds a value Linear has not been given yet.
func (f FieldState) Dirty() bool { return f.Value != f.SyncedValue }

// Equal reports whether two states are the same (FieldState holds a slice, so == does not compile).
func (f FieldState) Equal(g FieldState) bool {
	return f.Value == g.Value && f.Source == g.Source && f.SourceAt.Equal(g.SourceAt) && f.LinearValue == g.LinearValue &&
		f.SyncedValue == g.SyncedValue && f.LinearAt.Equal(g.LinearAt) && f.Pushing == g.Pushing &&
		f.PushValue == g.PushValue && f.PushLinear == g.PushLinear && f.PushAt.Equal(g.PushAt) &&
		slices.EqualFunc(f.Writes, g.Writes, time.Time.Equal)
}

// wrote reports whether t is the updatedAt Linear gave one of linsync's recorded writes of the field.
func (f FieldState) wrote(t time.Time) bool {
	return slices.ContainsFunc(f.Writes, t.Equal)
}

// AuditEntry is one recorded conflict, stale change, unlink or unmatched email.
type AuditEntry struct {
	ID        int64          `json:"id"`
	Kind      string         `json:"kind"`
	Field     string         `json:"field,omitempty"`
	Detail    map[string]any `json:"detail"`
	CreatedAt time.Time      `json:"created_at"`
}

// MergeLinear folds in what a Linear webhook says about a field: Linear held v at t (the updatedAt), and
// edited says the webhook's updatedFrom names the field (someone edited it at exactly t); byOther says the webhook's
// actor is a Linear user or app other than linsync's (a webhook whose actor is linsync's never gets here; one without
// an actor may be ours). Rules, which make delivery order irrelevant:
//   - our own write (the third echo guard, by value, for webhooks whose actor cannot tell): v is the value of the
//     write in flight, stamped after the write began (see EchoSkew) and the actor is not someone else, or t is the updatedAt of one of our recorded writes. Only
//     what Linear holds advances; the question's value and version do not move, so a newer app edit is not
//     overwritten by the echo of an older one.
//   - t not after LinearAt: Linear has moved on since (a later webhook, or our own later write). The value is
//     history, unless it is an edit newer than the edit behind the question's value: our write then overwrote a
//     newer human edit, so the human's value wins and is written back.
//     An edit at t to the value the field already has only advances its version to t.
//   - v equal to the last known Linear value and not edited: nothing changed in Linear (an echo of our write, a
//     duplicate, or a change to another field); only LinearAt advances. (Edited, it was changed away and back.)
//   - not edited, but changed since the last known Linear state (this webhook is about another field; the field's
//     own webhook is late or lost): the change happened at an unknown time after LinearAt. With an app edit pending
//     since before LinearAt the order is unknown, and the app's edit, whose time is known, is kept and written back.
//   - otherwise someone edited the field in Linear by t: the later edit wins. If the app's edit is newer it stays
//     and is written back (Value != SyncedValue); if not, the Linear value replaces it. Every edit that loses
//     against a pending edit of the other side is a conflict and is recorded.
func MergeLinear(f FieldState, v string, t time.Time, edited, byOther bool) (FieldState, bool, *AuditEntry) {
	if f.Pushing && !byOther && v == f.PushLinear && !t.Before(f.PushAt.Add(-EchoSkew)) {
		if f.LinearAt.IsZero() || t.After(f.LinearAt) {
			f.LinearValue, f.SyncedValue, f.LinearAt = v, f.PushValue, t
		}
		return f, false, nil
	}
	if f.wrote(t) {
		return f, false, nil
	}
	if !f.LinearAt.IsZero() && !t.After(f.LinearAt) {
		if edited && v == f.Value && t.After(f.SourceAt) {
			// The same value, edited later than the edit behind it: the field's version must advance to this edit,
			// or a late webhook of an edit between the two would count as newer and overwrite the latest edit.
			f.Source, f.SourceAt = SourceLinear, t
			return f, false, nil
		}
		if edited && v != f.Value && t.After(f.SourceAt) {
			old := f.Value
			f.Value, f.Source, f.SourceAt = v, SourceLinear, t
			return f, true, &AuditEntry{Kind: AuditConflict, Detail: map[string]any{
				"winner": SourceLinear, "linear_value": v, "linear_at": t, "app_value": old,
				"note": "a late webhook carried an edit newer than the value linsync wrote; it is written back"}}
		}
		if v != f.LinearValue {
			return f, false, &AuditEntry{Kind: AuditStaleLinear, Detail: map[string]any{
				"ignored_value": v, "linear_updated_at": t, "known_linear_value": f.LinearValue, "known_linear_at": f.LinearAt}}
		}
		return f, false, nil
	}
	prev, prevAt := f.LinearValue, f.LinearAt
	f.LinearValue, f.LinearAt = v, t
	if v == prev && !edited {
		return f, false, nil
	}
	pending := f.Value != f.SyncedValue
	f.SyncedValue = v
	if !edited && pending && !prevAt.After(f.SourceAt) {
		// Linear changed the field at some time between prevAt and t, but this webhook is about another field
		// (its own is late or lost), so when is unknown. The pending app edit's time is known and may be the later
		// one: it stays and is written back. Had Linear's change been later, its own webhook still brings its exact
		// time, and the history rule above lets it win then.
		return f, false, &AuditEntry{Kind: AuditConflict, Detail: map[string]any{
			"winner": SourceApp, "kept_value": f.Value, "kept_at": f.SourceAt, "linear_value": v,
			"linear_changed_after": prevAt, "linear_changed_by": t,
			"note": "Linear's change came without its own webhook, so its time is unknown; the app's newer-known edit is kept"}}
	}
	if t.After(f.SourceAt) {
		old := f.Value
		f.Value, f.Source, f.SourceAt = v, SourceLinear, t
		if pending && old != v {
			return f, true, &AuditEntry{Kind: AuditConflict, Detail: map[string]any{
				"winner": SourceLinear, "linear_value": v, "linear_at": t, "app_value": old}}
		}
		return f, old != v, nil
	}
	if f.Value == v {
		return f, false, nil
	}
	return f, false, &AuditEntry{Kind: AuditConflict, Detail: map[string]any{
		"winner": f.Source, "kept_value": f.Value, "kept_at": f.SourceAt, "linear_value": v, "linear_at": t}}
}

// MergeApp applies an edit made in the app at t. An edit older than the field's current value (possible only with
// clock skew between linsync and Linear) loses and is recorded.
func MergeApp(f FieldState, v string, t time.Time) (FieldState, bool, *AuditEntry) {
	if v == f.Value {
		return f, false, nil
	}
	if t.Before(f.SourceAt) {
		return f, false, &AuditEntry{Kind: AuditStaleApp, Detail: map[string]any{
			"ignored_value": v, "app_at": t, "kept_value": f.Value, "kept_source": f.Source, "kept_at": f.SourceAt}}
	}
	f.Value, f.Source, f.SourceAt = v, SourceApp, t
	return f, true, nil
}

// MergePush records a successful write of pushed to Linear, where it became linearValue at t (Linear's updatedAt
// in the mutation's answer). If a later Linear state is already known, the write is history and changes nothing.
// A zero t means nothing had to be sent (Linear already holds linearValue, e.g. "unassigned" for an email that
// matches no Linear user): the value counts as synced only if Linear still holds that.
func MergePush(f FieldState, pushed, linearValue string, t time.Time) FieldState {
	f.Pushing, f.PushValue, f.PushLinear, f.PushAt = false, "", "", time.Time{}
	if t.IsZero() {
		if f.LinearValue == linearValue {
			f.SyncedValue = pushed
		}
		return f
	}
	f.Writes = append(slices.Clone(f.Writes), t)
	if len(f.Writes) > maxWrites {
		f.Writes = f.Writes[len(f.Writes)-maxWrites:]
	}
	if !f.LinearAt.IsZero() && !t.After(f.LinearAt) {
		return f
	}
	f.LinearValue, f.SyncedValue, f.LinearAt = linearValue, pushed, t
	return f
}

// MarkPushing records, before the Linear call at `at` (linsync's clock), that pushed is being written and Linear
// will hold linearValue.
func MarkPushing(f FieldState, pushed, linearValue string, at time.Time) FieldState {
	f.Pushing, f.PushValue, f.PushLinear, f.PushAt = true, pushed, linearValue, at
	return f
}

// NormalizeEmail is how emails are compared everywhere in question sync.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
