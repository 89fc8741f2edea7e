package linsync

import (
	"strconv"
	"time"
)

// Question statuses.
const (
	StatusOpen       = "open"
	StatusInProgress = "in_progress"
	StatusAnswered   = "answered"
	StatusClosed     = "closed"
)

// Sync states of a question as the API shows them.
const (
	SyncPending  = "pending"
	SyncSynced   = "synced"
	SyncFailed   = "failed"
	SyncUnlinked = "unlinked"
)

// Question is a question from the Q&A app with its Linear link, sync state and versioned fields.
type Question struct {
	ID               string                `json:"id"`
	WorkspaceID      string                `json:"workspace_id"`
	ExternalID       *string               `json:"external_id"`
	Title            string                `json:"title"`
	Body             string                `json:"body"`
	AskerEmail       string                `json:"asker_email"`
	TeamID           string                `json:"team_id"`
	LinearIssueID    string                `json:"linear_issue_id"`
	IssueCreated     bool                  `json:"issue_created"`
	LinearIdentifier string                `json:"linear_identifier"`
	LinearURL        string                `json:"linear_url"`
	Linked           bool                  `json:"linked"`
	SyncState        string                `json:"sync_state"`
	SyncReason       string                `json:"sync_reason"`
	SyncWarning      string                `json:"sync_warning"`
	ArchivedAt       *time.Time            `json:"archived_at"`
	ArchiveSynced    bool                  `json:"archive_synced"`
	CreatedAt        time.Time             `json:"created_at"`
	UpdatedAt        time.Time             `json:"updated_at"`
	Fields           map[string]FieldState `json:"fields"`
}

// Field returns the current value of a synced field.
func (q *Question) Field(name string) string { return q.Fields[name].Value }

// Priority returns the question's priority on Linear's 0-4 scale.
func (q *Question) Priority() int { p, _ := strconv.Atoi(q.Field(FieldPriority)); return p }

// NeedsPush reports whether some field holds a value Linear has not been given.
func (q *Question) NeedsPush() bool {
	for _, f := range SyncedFields {
		if q.Fields[f].Dirty() {
			return true
		}
	}
	return false
}

// QuestionInput is a validated new question.
type QuestionInput struct {
	WorkspaceID   string
	ExternalID    string
	Title         string
	Body          string
	AskerEmail    string
	AssigneeEmail string
	Priority      int
	TeamID        string
	At            time.Time
}

// QuestionFilter selects questions to list.
type QuestionFilter struct {
	Status        string
	AssigneeEmail string
	UpdatedSince  *time.Time
	Limit         int
	Cursor        string
}

// Reply is a reply to a question, written in the app or as a comment in Linear.
type Reply struct {
	ID              string     `json:"id"`
	QuestionID      string     `json:"question_id"`
	ExternalID      *string    `json:"external_id"`
	Body            string     `json:"body"`
	AuthorEmail     string     `json:"author_email"`
	AuthorName      string     `json:"author_name,omitempty"`
	Source          string     `json:"source"`
	LinearCommentID string     `json:"linear_comment_id"`
	Synced          bool       `json:"synced"`
	DeletedAt       *time.Time `json:"deleted_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

// ReplyInput is a validated reply from the app.
type ReplyInput struct {
	WorkspaceID string
	QuestionID  string
	ExternalID  string
	Body        string
	AuthorEmail string
}

// PushedField is a field value written to Linear and what Linear holds for it afterwards.
type PushedField struct {
	Value       string `json:"value"`
	LinearValue string `json:"linear_value"`
}

// IssueLink is what Linear answered about a question's issue.
type IssueLink struct {
	Identifier string
	URL        string
	TeamID     string
}

// SyncWork is what a question still needs from Linear.
type SyncWork struct {
	Linked         bool     `json:"linked"`
	NeedIssue      bool     `json:"need_issue"`
	NeedPush       bool     `json:"need_push"`
	PendingReplies []string `json:"pending_replies"`
	NeedArchive    bool     `json:"need_archive"`
}

// Empty reports whether nothing is left to do.
func (w SyncWork) Empty() bool {
	return !w.Linked || (!w.NeedIssue && !w.NeedPush && len(w.PendingReplies) == 0 && !w.NeedArchive)
}

// LinearIssueState is what one Issue webhook says about an issue: its values for the Linear-synced fields (status
// already mapped), as of UpdatedAt.
type LinearIssueState struct {
	IssueID    string
	Identifier string
	URL        string
	TeamID     string
	UpdatedAt  time.Time
	Values     map[string]string
	// Edited names the fields the webhook's updatedFrom lists: edited at exactly UpdatedAt.
	Edited map[string]bool
	// ByOther says the webhook's actor is someone other than linsync (a user, app or integration); without an actor
	// the change may be linsync's own write, which the value of a write in flight then recognises.
	ByOther bool
	Removed bool
}

// LinearApply is what applying a Linear change did to a question.
type LinearApply struct {
	QuestionID string   `json:"question_id"`
	ExternalID string   `json:"external_id"`
	Found      bool     `json:"found"`
	Changed    []string `json:"changed"`
	NeedsPush  bool     `json:"needs_push"`
	Unlinked   bool     `json:"unlinked"`
	Audits     int      `json:"audits"`
}

// LinearComment is a comment written in Linear on an issue.
type LinearComment struct {
	CommentID   string
	IssueID     string
	Body        string
	AuthorEmail string
	AuthorName  string
	CreatedAt   time.Time
}

// Delete policies for an archived question's Linear issue.
const (
	DeletePolicyComment = "comment"
	DeletePolicyCancel  = "cancel"
)

// DefaultStatusMap maps Linear workflow state types to question statuses unless a workspace configures otherwise.
var DefaultStatusMap = map[string]string{
	"triage": StatusOpen, "backlog": StatusOpen, "unstarted": StatusOpen, "started": StatusInProgress,
	"completed": StatusAnswered, "canceled": StatusClosed, "duplicate": StatusClosed,
}

// DefaultStateForStatus is the Linear state type a question status change in the app moves the issue to.
var DefaultStateForStatus = map[string]string{
	StatusOpen: "unstarted", StatusInProgress: "started", StatusAnswered: "completed", StatusClosed: "canceled",
}

// QuestionSettings is a workspace's configuration of question sync.
type QuestionSettings struct {
	StatusMap      map[string]string `json:"status_map"`
	StateForStatus map[string]string `json:"state_for_status"`
	DeletePolicy   string            `json:"delete_policy"`
	CallbackURL    string            `json:"callback_url"`
	// QuestionURLTemplate is the app's URL of a question, {external_id} and {id} replaced; linked from issues.
	QuestionURLTemplate string `json:"question_url_template"`
	// CallbackSecretLast4 shows which callback secret is set, never the secret.
	CallbackSecretLast4 string    `json:"callback_secret_last4"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// StatusOf maps a Linear state type to a question status ("" when the type is unknown).
func (s *QuestionSettings) StatusOf(stateType string) string { return s.StatusMap[stateType] }

// QuestionSettingsInput replaces a workspace's settings; a nil CallbackSecret keeps the stored one.
type QuestionSettingsInput struct {
	StatusMap      map[string]string
	StateForStatus map[string]string
	DeletePolicy   string
	CallbackURL    string
	CallbackSecret *string
	// QuestionURLTemplate is the app's URL of a question, {external_id} and {id} replaced.
	QuestionURLTemplate string
}

// Next actions of an unsynced question, for reconciliation and the sync-status view.
const (
	// NextActionResync: nothing is writing the question now; signal its workflow (activities.Questions.ResyncQuestion).
	NextActionResync = "resync"
	// NextActionWait: the question changed or was attempted within UnsyncedGrace; its workflow is probably at work.
	NextActionWait = "wait"
	// NextActionReconnect: the workspace has no active Linear connection; a resync would fail the same way.
	NextActionReconnect = "reconnect_linear"
)

// UnsyncedGrace is how long after its last change or attempt a pending question is presumed in the hands of its
// workflow rather than forgotten.
const UnsyncedGrace = time.Minute

// UnsyncedQuestion is a linked question whose sync is pending or failed: what reconciliation needs to retry it.
type UnsyncedQuestion struct {
	QuestionID string `json:"question_id"`
	ExternalID string `json:"external_id"`
	// State is SyncPending or SyncFailed.
	State string `json:"state"`
	// Reason is why the last pass failed, or what is waiting to be written.
	Reason string `json:"reason"`
	// Attempts counts the sync passes that failed since the question was last synced.
	Attempts      int        `json:"attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	// NextAction is NextActionResync, NextActionWait or NextActionReconnect.
	NextAction string `json:"next_action"`
}
