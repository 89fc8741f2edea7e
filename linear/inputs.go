package linear

import (
	"bytes"
	"encoding/json"
)

// Optional is an input field of an update: unset fields are left out of the request, Clear sends an explicit null
// (Linear clears the value), Value sends a value. Its zero value is unset.
type Optional[T any] struct {
	value T
	state optState
}

type optState uint8

const (
	optUnset optState = iota
	optNull
	optValue
)

// Value returns an Optional that sets the field to v.
func Value[T any](v T) Optional[T] { return Optional[T]{value: v, state: optValue} }

// Clear returns an Optional that clears the field (sends null), e.g. Clear[string]() for assigneeId unassigns.
func Clear[T any]() Optional[T] { return Optional[T]{state: optNull} }

// IsZero reports whether the field is unset; encoding/json's omitzero uses it to leave the field out.
func (o Optional[T]) IsZero() bool { return o.state == optUnset }

// IsNull reports whether the field is explicitly cleared.
func (o Optional[T]) IsNull() bool { return o.state == optNull }

// Get returns the value and whether one is set.
func (o Optional[T]) Get() (T, bool) { return o.value, o.state == optValue }

// MarshalJSON writes null for a cleared field and the value otherwise.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if o.state != optValue {
		return []byte("null"), nil
	}
	return json.Marshal(o.value)
}

// UnmarshalJSON reads null as Clear and anything else as Value, so logged inputs round-trip.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*o = Clear[T]()
		return nil
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*o = Value(v)
	return nil
}

// IssueCreateInput is the subset of Linear's IssueCreateInput linsync sends. Empty fields are omitted, so Linear
// applies its defaults. ID is the client-chosen UUID that makes the create idempotent.
type IssueCreateInput struct {
	ID            string   `json:"id,omitempty"`
	TeamID        string   `json:"teamId"`
	Title         string   `json:"title,omitempty"`
	Description   string   `json:"description,omitempty"`
	AssigneeID    string   `json:"assigneeId,omitempty"`
	StateID       string   `json:"stateId,omitempty"`
	Priority      int      `json:"priority,omitempty"`
	LabelIDs      []string `json:"labelIds,omitempty"`
	ParentID      string   `json:"parentId,omitempty"`
	ProjectID     string   `json:"projectId,omitempty"`
	DueDate       string   `json:"dueDate,omitempty"`
	Estimate      *int     `json:"estimate,omitempty"`
	SubscriberIDs []string `json:"subscriberIds,omitempty"`
}

// IssueUpdateInput is the subset of Linear's IssueUpdateInput linsync sends. Only set fields go on the wire;
// Clear sends null, which Linear treats as "clear the value".
type IssueUpdateInput struct {
	Title           Optional[string]   `json:"title,omitzero"`
	Description     Optional[string]   `json:"description,omitzero"`
	AssigneeID      Optional[string]   `json:"assigneeId,omitzero"`
	StateID         Optional[string]   `json:"stateId,omitzero"`
	Priority        Optional[int]      `json:"priority,omitzero"`
	LabelIDs        Optional[[]string] `json:"labelIds,omitzero"`
	AddedLabelIDs   Optional[[]string] `json:"addedLabelIds,omitzero"`
	RemovedLabelIDs Optional[[]string] `json:"removedLabelIds,omitzero"`
	ParentID        Optional[string]   `json:"parentId,omitzero"`
	ProjectID       Optional[string]   `json:"projectId,omitzero"`
	DueDate         Optional[string]   `json:"dueDate,omitzero"`
	Estimate        Optional[int]      `json:"estimate,omitzero"`
	TeamID          Optional[string]   `json:"teamId,omitzero"`
	Trashed         Optional[bool]     `json:"trashed,omitzero"`
}

// CommentCreateInput is the subset of Linear's CommentCreateInput linsync sends; ID is the client-chosen UUID.
type CommentCreateInput struct {
	ID       string `json:"id,omitempty"`
	IssueID  string `json:"issueId"`
	Body     string `json:"body"`
	ParentID string `json:"parentId,omitempty"`
	// DoNotSubscribeToIssue keeps the API user out of the issue's subscribers when it only relays a reply.
	DoNotSubscribeToIssue bool `json:"doNotSubscribeToIssue,omitempty"`
}

// IssueLabelCreateInput is Linear's IssueLabelCreateInput; an empty TeamID makes a workspace label.
type IssueLabelCreateInput struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name"`
	Color       string `json:"color,omitempty"`
	Description string `json:"description,omitempty"`
	TeamID      string `json:"teamId,omitempty"`
	ParentID    string `json:"parentId,omitempty"`
}

// WebhookCreateInput is Linear's WebhookCreateInput. Linear needs either TeamID or AllPublicTeams.
type WebhookCreateInput struct {
	ID             string   `json:"id,omitempty"`
	URL            string   `json:"url"`
	ResourceTypes  []string `json:"resourceTypes"`
	TeamID         string   `json:"teamId,omitempty"`
	AllPublicTeams bool     `json:"allPublicTeams,omitempty"`
	Secret         string   `json:"secret,omitempty"`
	Label          string   `json:"label,omitempty"`
	Enabled        *bool    `json:"enabled,omitempty"`
}

// WebhookUpdateInput is Linear's WebhookUpdateInput; only set fields are sent, so re-enabling a webhook does not
// reset its URL or secret.
type WebhookUpdateInput struct {
	URL           Optional[string]   `json:"url,omitzero"`
	ResourceTypes Optional[[]string] `json:"resourceTypes,omitzero"`
	Secret        Optional[string]   `json:"secret,omitzero"`
	Label         Optional[string]   `json:"label,omitzero"`
	Enabled       Optional[bool]     `json:"enabled,omitzero"`
}
