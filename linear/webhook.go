package linear

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/linsync/linsync"
)

// Webhook headers Linear sends with every delivery.
const (
	HeaderDelivery  = "Linear-Delivery"
	HeaderEvent     = "Linear-Event"
	HeaderSignature = "Linear-Signature"
)

// webhookSenders are the addresses Linear's webhook documentation lists as its senders. The first four are the ones
// its docs have long published; the last two were added to the same list later. Linear may change it.
var webhookSenders = []string{
	"35.231.147.226", "35.243.134.228", "34.140.253.14", "34.38.87.206",
	"34.134.222.122", "35.222.25.142",
}

// WebhookSenders returns Linear's published webhook sender addresses as single-address prefixes: what the
// LINSYNC_WEBHOOK_ALLOWED_IPS preset "linear" expands to.
func WebhookSenders() []netip.Prefix {
	out := make([]netip.Prefix, len(webhookSenders))
	for i, s := range webhookSenders {
		a := netip.MustParseAddr(s)
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out
}

// Sign returns the lower-case hex HMAC-SHA256 of body under secret, as Linear puts it in Linear-Signature.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is a valid signature of body under any of the secrets.
// The comparison runs in constant time over the decoded digest; a header that is not hex never matches.
func VerifySignature(body []byte, header string, secrets ...[]byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(header))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		mac := hmac.New(sha256.New, s)
		mac.Write(body)
		// Check every secret so the time taken does not reveal which one matched.
		if hmac.Equal(mac.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}

// ErrWebhookExpired is returned by CheckTimestamp for a missing or out-of-tolerance webhookTimestamp.
var ErrWebhookExpired = linsync.Errorf(linsync.EEXPIRED, "webhook expired")

// CheckTimestamp reports ErrWebhookExpired unless the signed webhookTimestamp (Unix ms) is within tolerance of now,
// in either direction. A zero timestamp counts as missing.
func CheckTimestamp(tsMillis int64, now time.Time, tolerance time.Duration) error {
	return CheckTimestampWindow(tsMillis, now, tolerance, tolerance)
}

// CheckTimestampWindow reports ErrWebhookExpired unless the signed webhookTimestamp (Unix ms) lies at most ahead in
// the future and at most behind in the past. Ingress accepts an old body for Linear's whole retry horizon (its
// retries keep the first attempt's timestamp) but a future one only within the clock tolerance. The comparison is
// in milliseconds, where any timestamp Millis decodes is far from overflowing (a time.Duration spans only 292
// years, so subtracting times would saturate and let a timestamp centuries ahead through).
func CheckTimestampWindow(tsMillis int64, now time.Time, ahead, behind time.Duration) error {
	if tsMillis <= 0 {
		return ErrWebhookExpired
	}
	nowMillis := now.UnixMilli()
	switch {
	case tsMillis > nowMillis && tsMillis-nowMillis > ahead.Milliseconds():
		return ErrWebhookExpired
	case tsMillis < nowMillis && nowMillis-tsMillis > behind.Milliseconds():
		return ErrWebhookExpired
	}
	return nil
}

// Webhook is a decoded Linear webhook body: the common envelope plus the typed entity for its type.
// Exactly one of the entity pointers is set for a known type; Unknown is true for a type linsync does not model,
// whose body is still available as Data.
type Webhook struct {
	Action           string          `json:"action"`
	Type             string          `json:"type"`
	CreatedAt        string          `json:"createdAt,omitempty"`
	OrganizationID   string          `json:"organizationId"`
	WebhookID        string          `json:"webhookId,omitempty"`
	WebhookTimestamp Millis          `json:"webhookTimestamp"`
	URL              string          `json:"url,omitempty"`
	Actor            *Actor          `json:"actor,omitempty"`
	Data             json.RawMessage `json:"data,omitempty"`
	UpdatedFrom      json.RawMessage `json:"updatedFrom,omitempty"`
	IssueData        json.RawMessage `json:"issueData,omitempty"`
	OAuthClientID    string          `json:"oauthClientId,omitempty"`

	Issue         *IssueData         `json:"-"`
	Comment       *CommentData       `json:"-"`
	IssueLabel    *IssueLabelData    `json:"-"`
	Reaction      *ReactionData      `json:"-"`
	Project       *ProjectData       `json:"-"`
	ProjectUpdate *ProjectUpdateData `json:"-"`
	Cycle         *CycleData         `json:"-"`
	Attachment    *AttachmentData    `json:"-"`
	Document      *DocumentData      `json:"-"`
	User          *UserData          `json:"-"`
	Customer      *CustomerData      `json:"-"`
	// Unknown: a type linsync does not model; the delivery is recorded as such, not failed.
	Unknown bool `json:"-"`
}

// Millis is a Unix time in milliseconds. Linear types it Float!, so it is decoded from any JSON number.
type Millis int64

// UnmarshalJSON accepts integers and floats (1.676e12), rejecting anything else.
func (m *Millis) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = 0
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/2 {
		return fmt.Errorf("webhookTimestamp out of range")
	}
	*m = Millis(f)
	return nil
}

// Actor is who made a change: a user, an OAuth client, an integration or an external user. It is null for system
// changes and absent in older payloads.
type Actor struct {
	ID      string `json:"id"`
	Type    string `json:"type,omitempty"`
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
	URL     string `json:"url,omitempty"`
	Service string `json:"service,omitempty"`
}

// UserRef is a user embedded in a webhook entity.
type UserRef struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

// StateRef is a workflow state embedded in an issue payload; Type is triage, backlog, unstarted, started,
// completed, canceled or duplicate.
type StateRef struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Color string `json:"color,omitempty"`
	Type  string `json:"type"`
}

// TeamRef is a team embedded in a webhook entity.
type TeamRef struct {
	ID   string `json:"id"`
	Key  string `json:"key,omitempty"`
	Name string `json:"name,omitempty"`
}

// LabelRef is a label embedded in an issue payload.
type LabelRef struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Color    string  `json:"color,omitempty"`
	ParentID *string `json:"parentId,omitempty"`
}

// IssueData is the data of an Issue event and the issueData of an IssueSLA event (schema IssueWebhookPayload).
type IssueData struct {
	ID            string     `json:"id"`
	Identifier    string     `json:"identifier,omitempty"`
	Number        float64    `json:"number,omitempty"`
	Title         string     `json:"title"`
	Description   *string    `json:"description,omitempty"`
	Priority      float64    `json:"priority"`
	PriorityLabel string     `json:"priorityLabel,omitempty"`
	StateID       string     `json:"stateId,omitempty"`
	State         *StateRef  `json:"state,omitempty"`
	TeamID        string     `json:"teamId,omitempty"`
	Team          *TeamRef   `json:"team,omitempty"`
	AssigneeID    *string    `json:"assigneeId,omitempty"`
	Assignee      *UserRef   `json:"assignee,omitempty"`
	CreatorID     *string    `json:"creatorId,omitempty"`
	LabelIDs      []string   `json:"labelIds,omitempty"`
	Labels        []LabelRef `json:"labels,omitempty"`
	ParentID      *string    `json:"parentId,omitempty"`
	ProjectID     *string    `json:"projectId,omitempty"`
	CycleID       *string    `json:"cycleId,omitempty"`
	URL           string     `json:"url,omitempty"`
	Trashed       *bool      `json:"trashed,omitempty"`
	ArchivedAt    *string    `json:"archivedAt,omitempty"`
	CreatedAt     string     `json:"createdAt,omitempty"`
	UpdatedAt     string     `json:"updatedAt,omitempty"`
}

// CommentData is the data of a Comment event. IssueID is null for comments on documents or project updates.
type CommentData struct {
	ID                string          `json:"id"`
	Body              string          `json:"body"`
	IssueID           *string         `json:"issueId,omitempty"`
	ParentID          *string         `json:"parentId,omitempty"`
	UserID            *string         `json:"userId,omitempty"`
	User              *UserRef        `json:"user,omitempty"`
	BotActor          json.RawMessage `json:"botActor,omitempty"`
	DocumentContentID *string         `json:"documentContentId,omitempty"`
	ReactionData      json.RawMessage `json:"reactionData,omitempty"`
	CreatedAt         string          `json:"createdAt,omitempty"`
	UpdatedAt         string          `json:"updatedAt,omitempty"`
	EditedAt          *string         `json:"editedAt,omitempty"`
}

// IssueLabelData is the data of an IssueLabel event; TeamID is null for workspace labels.
type IssueLabelData struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Color    string  `json:"color,omitempty"`
	TeamID   *string `json:"teamId,omitempty"`
	ParentID *string `json:"parentId,omitempty"`
	IsGroup  bool    `json:"isGroup,omitempty"`
}

// ReactionData is the data of a Reaction event (schema ReactionWebhookPayload): an emoji on a comment, an issue or a
// project update, with the reacted-to entity embedded.
type ReactionData struct {
	ID                 string            `json:"id"`
	Emoji              string            `json:"emoji"`
	UserID             *string           `json:"userId,omitempty"`
	User               *UserRef          `json:"user,omitempty"`
	ExternalUserID     *string           `json:"externalUserId,omitempty"`
	CommentID          *string           `json:"commentId,omitempty"`
	Comment            *CommentRef       `json:"comment,omitempty"`
	IssueID            *string           `json:"issueId,omitempty"`
	Issue              *IssueRef         `json:"issue,omitempty"`
	ProjectUpdateID    *string           `json:"projectUpdateId,omitempty"`
	ProjectUpdate      *ProjectUpdateRef `json:"projectUpdate,omitempty"`
	InitiativeUpdateID *string           `json:"initiativeUpdateId,omitempty"`
	PostID             *string           `json:"postId,omitempty"`
	CreatedAt          string            `json:"createdAt,omitempty"`
	UpdatedAt          string            `json:"updatedAt,omitempty"`
	ArchivedAt         *string           `json:"archivedAt,omitempty"`
}

// CommentRef is a comment embedded in another entity's payload (schema CommentChildWebhookPayload).
type CommentRef struct {
	ID                string  `json:"id"`
	Body              string  `json:"body"`
	IssueID           *string `json:"issueId,omitempty"`
	UserID            *string `json:"userId,omitempty"`
	ProjectUpdateID   *string `json:"projectUpdateId,omitempty"`
	DocumentContentID *string `json:"documentContentId,omitempty"`
}

// IssueRef is an issue embedded in another entity's payload (schema IssueChildWebhookPayload), with its team.
type IssueRef struct {
	ID         string   `json:"id"`
	Identifier string   `json:"identifier"`
	Title      string   `json:"title"`
	URL        string   `json:"url,omitempty"`
	TeamID     string   `json:"teamId"`
	Team       *TeamRef `json:"team,omitempty"`
}

// ProjectUpdateRef is a project update embedded in another entity's payload.
type ProjectUpdateRef struct {
	ID      string      `json:"id"`
	Body    string      `json:"body"`
	UserID  string      `json:"userId,omitempty"`
	Project *ProjectRef `json:"project,omitempty"`
}

// ProjectRef is a project embedded in another entity's payload.
type ProjectRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

// ProjectData is the data of a Project event.
type ProjectData struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	StatusID    *string  `json:"statusId,omitempty"`
	State       string   `json:"state,omitempty"`
	TeamIDs     []string `json:"teamIds,omitempty"`
	LeadID      *string  `json:"leadId,omitempty"`
	URL         string   `json:"url,omitempty"`
	// Status is the project's status (newer payloads; older ones carry State alone).
	Status *StateRef `json:"status,omitempty"`
}

// ProjectUpdateData is the data of a ProjectUpdate event.
type ProjectUpdateData struct {
	ID        string   `json:"id"`
	Body      string   `json:"body"`
	ProjectID string   `json:"projectId"`
	Health    string   `json:"health,omitempty"`
	UserID    *string  `json:"userId,omitempty"`
	User      *UserRef `json:"user,omitempty"`
	// Project is the project the update is posted on, when the payload embeds it.
	Project *ProjectRef `json:"project,omitempty"`
	URL     string      `json:"url,omitempty"`
}

// CycleData is the data of a Cycle event (schema CycleWebhookPayload). CompletedAt is set when the cycle was
// completed; the histories are Linear's daily counts, newest last.
type CycleData struct {
	ID                            string    `json:"id"`
	Number                        float64   `json:"number"`
	Name                          *string   `json:"name,omitempty"`
	Description                   *string   `json:"description,omitempty"`
	TeamID                        string    `json:"teamId,omitempty"`
	StartsAt                      string    `json:"startsAt,omitempty"`
	EndsAt                        string    `json:"endsAt,omitempty"`
	CompletedAt                   *string   `json:"completedAt,omitempty"`
	InheritedFromID               *string   `json:"inheritedFromId,omitempty"`
	IssueCountHistory             []float64 `json:"issueCountHistory,omitempty"`
	CompletedIssueCountHistory    []float64 `json:"completedIssueCountHistory,omitempty"`
	ScopeHistory                  []float64 `json:"scopeHistory,omitempty"`
	CompletedScopeHistory         []float64 `json:"completedScopeHistory,omitempty"`
	InProgressScopeHistory        []float64 `json:"inProgressScopeHistory,omitempty"`
	UncompletedIssuesUponCloseIDs []string  `json:"uncompletedIssuesUponCloseIds,omitempty"`
	CreatedAt                     string    `json:"createdAt,omitempty"`
	UpdatedAt                     string    `json:"updatedAt,omitempty"`
	ArchivedAt                    *string   `json:"archivedAt,omitempty"`
	AutoArchivedAt                *string   `json:"autoArchivedAt,omitempty"`
}

// AttachmentData is the data of an Attachment event (schema AttachmentWebhookPayload): a link on an issue (a pull
// request, a Sentry event, …); SourceType says which integration made it.
type AttachmentData struct {
	ID                    string          `json:"id"`
	Title                 string          `json:"title"`
	Subtitle              *string         `json:"subtitle,omitempty"`
	URL                   string          `json:"url"`
	IssueID               string          `json:"issueId"`
	OriginalIssueID       *string         `json:"originalIssueId,omitempty"`
	CreatorID             *string         `json:"creatorId,omitempty"`
	ExternalUserCreatorID *string         `json:"externalUserCreatorId,omitempty"`
	Source                json.RawMessage `json:"source,omitempty"`
	SourceType            *string         `json:"sourceType,omitempty"`
	Metadata              json.RawMessage `json:"metadata,omitempty"`
	GroupBySource         bool            `json:"groupBySource,omitempty"`
	CreatedAt             string          `json:"createdAt,omitempty"`
	UpdatedAt             string          `json:"updatedAt,omitempty"`
	ArchivedAt            *string         `json:"archivedAt,omitempty"`
}

// DocumentData is the data of a Document event (schema DocumentWebhookPayload): a document of a project or an
// initiative.
type DocumentData struct {
	ID                    string   `json:"id"`
	Title                 string   `json:"title"`
	SlugID                string   `json:"slugId,omitempty"`
	Content               *string  `json:"content,omitempty"`
	Description           *string  `json:"description,omitempty"`
	Icon                  *string  `json:"icon,omitempty"`
	Color                 *string  `json:"color,omitempty"`
	ProjectID             *string  `json:"projectId,omitempty"`
	InitiativeID          *string  `json:"initiativeId,omitempty"`
	ResourceFolderID      *string  `json:"resourceFolderId,omitempty"`
	CreatorID             *string  `json:"creatorId,omitempty"`
	UpdatedByID           *string  `json:"updatedById,omitempty"`
	LastAppliedTemplateID *string  `json:"lastAppliedTemplateId,omitempty"`
	SubscriberIDs         []string `json:"subscriberIds,omitempty"`
	SortOrder             float64  `json:"sortOrder,omitempty"`
	Trashed               *bool    `json:"trashed,omitempty"`
	HiddenAt              *string  `json:"hiddenAt,omitempty"`
	CreatedAt             string   `json:"createdAt,omitempty"`
	UpdatedAt             string   `json:"updatedAt,omitempty"`
	ArchivedAt            *string  `json:"archivedAt,omitempty"`
}

// UserData is the data of a User event (schema UserWebhookPayload): a member joined, changed or left (Active false,
// with DisableReason). A user leaving is what ends a personal API key.
type UserData struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	DisplayName   string  `json:"displayName"`
	Email         string  `json:"email"`
	Active        bool    `json:"active"`
	Admin         bool    `json:"admin"`
	Owner         *bool   `json:"owner,omitempty"`
	Guest         bool    `json:"guest"`
	App           bool    `json:"app"`
	DisableReason *string `json:"disableReason,omitempty"`
	Description   *string `json:"description,omitempty"`
	Timezone      *string `json:"timezone,omitempty"`
	AvatarURL     *string `json:"avatarUrl,omitempty"`
	URL           string  `json:"url,omitempty"`
	CreatedAt     string  `json:"createdAt,omitempty"`
	UpdatedAt     string  `json:"updatedAt,omitempty"`
	ArchivedAt    *string `json:"archivedAt,omitempty"`
}

// CustomerData is the data of a Customer event (schema CustomerWebhookPayload), with its status and tier.
type CustomerData struct {
	ID                   string        `json:"id"`
	Name                 string        `json:"name"`
	SlugID               string        `json:"slugId,omitempty"`
	Domains              []string      `json:"domains"`
	ExternalIDs          []string      `json:"externalIds"`
	OwnerID              *string       `json:"ownerId,omitempty"`
	StatusID             *string       `json:"statusId,omitempty"`
	Status               *CustomerRank `json:"status,omitempty"`
	TierID               *string       `json:"tierId,omitempty"`
	Tier                 *CustomerRank `json:"tier,omitempty"`
	Revenue              *float64      `json:"revenue,omitempty"`
	Size                 *float64      `json:"size,omitempty"`
	ApproximateNeedCount float64       `json:"approximateNeedCount"`
	MainSourceID         *string       `json:"mainSourceId,omitempty"`
	SlackChannelID       *string       `json:"slackChannelId,omitempty"`
	LogoURL              *string       `json:"logoUrl,omitempty"`
	URL                  string        `json:"url,omitempty"`
	CreatedAt            string        `json:"createdAt,omitempty"`
	UpdatedAt            string        `json:"updatedAt,omitempty"`
	ArchivedAt           *string       `json:"archivedAt,omitempty"`
}

// CustomerRank is a customer's status or tier as embedded in its payload.
type CustomerRank struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	DisplayName string  `json:"displayName"`
	Color       string  `json:"color"`
	Description *string `json:"description,omitempty"`
	Type        *string `json:"type,omitempty"`
}

// Event types linsync decodes into typed entities.
const (
	TypeIssue         = "Issue"
	TypeComment       = "Comment"
	TypeIssueLabel    = "IssueLabel"
	TypeReaction      = "Reaction"
	TypeProject       = "Project"
	TypeProjectUpdate = "ProjectUpdate"
	TypeCycle         = "Cycle"
	TypeAttachment    = "Attachment"
	TypeDocument      = "Document"
	TypeUser          = "User"
	TypeCustomer      = "Customer"
	TypeIssueSLA      = "IssueSLA"
	TypeOAuthApp      = "OAuthApp"
)

// DecodeWebhook parses a webhook body into its envelope and typed entity.
// Malformed JSON is an EINVALID error; a body of the wrong shape is EUNPROCESSABLE with the JSON path of the field.
func DecodeWebhook(body []byte) (*Webhook, error) {
	w, ok := PeekWebhook(body)
	if !ok {
		return decodeWebhookStd(body)
	}
	if err := w.DecodeEntity(); err != nil {
		return nil, err
	}
	return w, nil
}

// decodeWebhookStd is DecodeWebhook with encoding/json alone: the way every body that does not decode cleanly
// takes, so that its answer quotes encoding/json's own messages.
func decodeWebhookStd(body []byte) (*Webhook, error) {
	var w Webhook
	if err := decodeStrictJSON(body, &w, ""); err != nil {
		return nil, err
	}
	if err := w.decodeEntity(decodeStrictJSON); err != nil {
		return nil, err
	}
	return &w, nil
}

// fastJSON decodes as encoding/json does, with the v2 engine behind Go's GOEXPERIMENT=jsonv2 in its v1 mode
// (github.com/go-json-experiment/json/v1): one pass instead of encoding/json's several, about three times faster on
// Linear's payloads (BenchmarkDecodeWebhook). It is trusted only when it succeeds: a body it refuses is decoded
// again by encoding/json, whose errors are the ones answered. FuzzVerifyAndDecode and TestFastDecodeIsStd hold the
// two to the same values.
func fastJSON(b []byte, v any, _ string) error { return jsonv1.Unmarshal(b, v) }

// PeekWebhook decodes a body's envelope only, in one pass, for ingress: the names it chooses a secret by are read
// before the signature is checked, and the entity is decoded after it (DecodeEntity) without reading the envelope
// again. ok is false for any body whose envelope does not decode cleanly; ingress then takes the long way, where
// bad input gets its exact answers (DecodeWebhook). For a body it takes, DecodeEntity after PeekWebhook is
// DecodeWebhook (which is made of the two).
func PeekWebhook(body []byte) (w *Webhook, ok bool) {
	w = new(Webhook)
	if fastJSON(body, w, "") != nil {
		return nil, false
	}
	return w, true
}

// DecodeEntity checks the envelope's required fields and decodes its typed entity from Data (or IssueData). An
// entity the fast decoder refuses is decoded again with encoding/json, for its exact error.
func (w *Webhook) DecodeEntity() error {
	if w.decodeEntity(fastJSON) == nil {
		return nil
	}
	return w.decodeEntity(decodeStrictJSON)
}

// decodeEntity is DecodeEntity with the given decoder for the entity.
func (w *Webhook) decodeEntity(decode func(b []byte, v any, field string) error) error {
	if w.Type == "" {
		return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "type", Message: "type is required"}
	}
	if w.Action == "" {
		return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "action", Message: "action is required"}
	}
	var target any
	field := "data"
	switch w.Type {
	case TypeIssue:
		w.Issue = new(IssueData)
		target = w.Issue
	case TypeComment:
		w.Comment = new(CommentData)
		target = w.Comment
	case TypeIssueLabel:
		w.IssueLabel = new(IssueLabelData)
		target = w.IssueLabel
	case TypeReaction:
		w.Reaction = new(ReactionData)
		target = w.Reaction
	case TypeProject:
		w.Project = new(ProjectData)
		target = w.Project
	case TypeProjectUpdate:
		w.ProjectUpdate = new(ProjectUpdateData)
		target = w.ProjectUpdate
	case TypeCycle:
		w.Cycle = new(CycleData)
		target = w.Cycle
	case TypeAttachment:
		w.Attachment = new(AttachmentData)
		target = w.Attachment
	case TypeDocument:
		w.Document = new(DocumentData)
		target = w.Document
	case TypeUser:
		w.User = new(UserData)
		target = w.User
	case TypeCustomer:
		w.Customer = new(CustomerData)
		target = w.Customer
	case TypeIssueSLA:
		w.Issue = new(IssueData)
		target, field = w.Issue, "issueData"
		if len(w.IssueData) == 0 || string(w.IssueData) == "null" {
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: field, Message: "issueData is required for IssueSLA"}
		}
		return decode(w.IssueData, target, field)
	case TypeOAuthApp:
		if w.OAuthClientID == "" {
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "oauthClientId", Message: "oauthClientId is required for OAuthApp"}
		}
		return nil
	default:
		w.Unknown = true
		return nil
	}
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: field, Message: "data is required for " + w.Type}
	}
	return decode(w.Data, target, field)
}

// EntityID is the id of the entity the webhook is about: data.id, issueData.id, or the OAuth client id.
func (w *Webhook) EntityID() string {
	switch {
	case w.Issue != nil:
		return w.Issue.ID
	case w.Comment != nil:
		return w.Comment.ID
	case w.IssueLabel != nil:
		return w.IssueLabel.ID
	case w.Reaction != nil:
		return w.Reaction.ID
	case w.Project != nil:
		return w.Project.ID
	case w.ProjectUpdate != nil:
		return w.ProjectUpdate.ID
	case w.Cycle != nil:
		return w.Cycle.ID
	case w.Attachment != nil:
		return w.Attachment.ID
	case w.Document != nil:
		return w.Document.ID
	case w.User != nil:
		return w.User.ID
	case w.Customer != nil:
		return w.Customer.ID
	case w.Type == TypeOAuthApp:
		return w.OAuthClientID
	}
	var probe struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(w.Data, &probe)
	return probe.ID
}

// decodeStrictJSON unmarshals b into v, turning errors into *linsync.Error with the field path under prefix.
func decodeStrictJSON(b []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			path := te.Field
			if prefix != "" && path != "" {
				path = prefix + "." + path
			} else if prefix != "" {
				path = prefix
			}
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: path,
				Message: fmt.Sprintf("%s: expected %s, got JSON %s", orRoot(path), te.Type, te.Value)}
		}
		if prefix != "" {
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: prefix, Message: fmt.Sprintf("%s: %v", prefix, err)}
		}
		return linsync.Errorf(linsync.EINVALID, "malformed JSON: %v", err)
	}
	if dec.More() {
		return linsync.Errorf(linsync.EINVALID, "malformed JSON: trailing data after the object")
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "body"
	}
	return path
}
