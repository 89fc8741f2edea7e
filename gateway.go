package linsync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"time"
)

// Risk levels of a classified GraphQL action, from least to most dangerous.
const (
	RiskLow    = "low"
	RiskMedium = "medium"
	RiskHigh   = "high"
)

// Risks lists the risk levels in increasing order.
var Risks = []string{RiskLow, RiskMedium, RiskHigh}

// RiskRank orders risk levels: low 0, medium 1, high 2; an unknown level ranks as high.
func RiskRank(risk string) int {
	if i := slices.Index(Risks, risk); i >= 0 {
		return i
	}
	return len(Risks) - 1
}

// Policy effects: what an agent key's policy says about an action.
const (
	EffectAllow           = "allow"
	EffectDeny            = "deny"
	EffectRequireApproval = "require_approval"
)

var effectRank = map[string]int{EffectAllow: 0, EffectRequireApproval: 1, EffectDeny: 2}

// GatewayAction is one root field of an agent's GraphQL operation, classified from the parsed document.
type GatewayAction struct {
	// Field is the schema's root field (issueDelete); Alias is what the document calls it, when it renames it.
	Field  string `json:"field"`
	Alias  string `json:"alias,omitempty"`
	Action string `json:"action"`
	Risk   string `json:"risk"`
}

// ActionRule gives an effect to the actions matching Match: an action (issue.create) or a pattern of them, where *
// stands for any run of characters within a dot-separated part (issue.*, *.delete).
type ActionRule struct {
	Match  string `json:"match"`
	Effect string `json:"effect"`
}

// AgentPolicy is what an agent key may do. Each action of an operation gets the effect of the first action rule
// that matches it, else the effect of its risk level, else the default for that level (reads and medium-risk writes
// allowed, high risk held for approval). The operation gets the strictest effect of its actions: deny over
// require_approval over allow.
type AgentPolicy struct {
	Risk    map[string]string `json:"risk,omitempty"`
	Actions []ActionRule      `json:"actions,omitempty"`
}

// DefaultRiskEffects are the effects of an agent policy that says nothing about a risk level.
var DefaultRiskEffects = map[string]string{RiskLow: EffectAllow, RiskMedium: EffectAllow, RiskHigh: EffectRequireApproval}

// Validate reports the first problem of the policy as an EUNPROCESSABLE error naming its field.
func (p AgentPolicy) Validate() error {
	for _, risk := range sortedKeys(p.Risk) {
		if !slices.Contains(Risks, risk) {
			return &Error{Code: EUNPROCESSABLE, Field: "policy.risk." + risk, Message: fmt.Sprintf("unknown risk level %q (known: low, medium, high)", risk)}
		}
		if _, ok := effectRank[p.Risk[risk]]; !ok {
			return &Error{Code: EUNPROCESSABLE, Field: "policy.risk." + risk, Message: "effect must be allow, deny or require_approval"}
		}
	}
	for i, r := range p.Actions {
		field := fmt.Sprintf("policy.actions[%d]", i)
		if r.Match == "" || len(r.Match) > 100 {
			return &Error{Code: EUNPROCESSABLE, Field: field + ".match", Message: "match must be an action or a pattern of 1-100 characters"}
		}
		if _, err := path.Match(r.Match, ""); err != nil {
			return &Error{Code: EUNPROCESSABLE, Field: field + ".match", Message: fmt.Sprintf("bad pattern %q", r.Match)}
		}
		if _, ok := effectRank[r.Effect]; !ok {
			return &Error{Code: EUNPROCESSABLE, Field: field + ".effect", Message: "effect must be allow, deny or require_approval"}
		}
	}
	if len(p.Actions) > 100 {
		return &Error{Code: EUNPROCESSABLE, Field: "policy.actions", Message: "at most 100 action rules"}
	}
	return nil
}

// EffectOf returns the effect the policy gives one action, and the rule that decided it.
func (p AgentPolicy) EffectOf(a GatewayAction) (effect, rule string) {
	for _, r := range p.Actions {
		// Dots separate the parts of an action, so a pattern's * stays within one part, as path.Match's does
		// within one path element.
		if ok, _ := path.Match(toPath(r.Match), toPath(a.Action)); ok {
			return r.Effect, "action " + r.Match
		}
	}
	if e, ok := p.Risk[a.Risk]; ok {
		return e, "risk " + a.Risk
	}
	if e, ok := DefaultRiskEffects[a.Risk]; ok {
		return e, "default for risk " + a.Risk
	}
	return EffectRequireApproval, "unknown risk"
}

// Decide returns the strictest effect of the actions under the policy, with a reason naming the action and rule
// that set it. An operation with no action (only __typename) is a read.
func (p AgentPolicy) Decide(actions []GatewayAction) (effect, reason string) {
	if len(actions) == 0 {
		actions = []GatewayAction{{Field: "__typename", Action: "read", Risk: RiskLow}}
	}
	effect = EffectAllow
	for _, a := range actions {
		e, rule := p.EffectOf(a)
		if effectRank[e] > effectRank[effect] || reason == "" {
			effect, reason = e, fmt.Sprintf("%s (%s risk): %s by %s", a.Action, a.Risk, e, rule)
		}
	}
	return effect, reason
}

func toPath(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch c {
		case '.':
			b[i] = '/'
		case '/':
			b[i] = '.'
		}
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// MaxRisk returns the highest risk among the actions (low for none).
func MaxRisk(actions []GatewayAction) string {
	risk := RiskLow
	for _, a := range actions {
		if RiskRank(a.Risk) > RiskRank(risk) {
			risk = a.Risk
		}
	}
	return risk
}

// ActionNames returns the actions' names in document order, each once.
func ActionNames(actions []GatewayAction) []string {
	out := []string{}
	for _, a := range actions {
		if !slices.Contains(out, a.Action) {
			out = append(out, a.Action)
		}
	}
	return out
}

// AgentKey is an agent's credential for the gateway, as stored: the key itself is shown once at creation and kept
// only as a hash. It is scoped to one workspace and carries the policy its calls are held to.
type AgentKey struct {
	ID          string      `json:"id"`
	WorkspaceID string      `json:"workspace_id"`
	Name        string      `json:"name"`
	Last4       string      `json:"last4"`
	Policy      AgentPolicy `json:"policy"`
	CreatedAt   time.Time   `json:"created_at"`
	LastUsedAt  *time.Time  `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time  `json:"revoked_at,omitempty"`
}

// GatewaySettings are a workspace's rules for held requests.
type GatewaySettings struct {
	// HighRiskApprovers is how many distinct admins must approve a high-risk request: 1 or 2.
	HighRiskApprovers int `json:"high_risk_approvers"`
	// ApprovalTimeoutSeconds is how long a held request waits for its decision before it expires.
	ApprovalTimeoutSeconds int `json:"approval_timeout_seconds"`
}

// DefaultGatewaySettings are the settings of a workspace that set none.
var DefaultGatewaySettings = GatewaySettings{HighRiskApprovers: 1, ApprovalTimeoutSeconds: 15 * 60}

// Validate reports the first out-of-range setting.
func (s GatewaySettings) Validate() error {
	if s.HighRiskApprovers < 1 || s.HighRiskApprovers > 2 {
		return &Error{Code: EUNPROCESSABLE, Field: "high_risk_approvers", Message: "high_risk_approvers must be 1 or 2"}
	}
	if s.ApprovalTimeoutSeconds < 1 || s.ApprovalTimeoutSeconds > 7*24*3600 {
		return &Error{Code: EUNPROCESSABLE, Field: "approval_timeout_seconds", Message: "approval_timeout_seconds must be from 1 to 604800 (a week)"}
	}
	return nil
}

// RequiredApprovals is how many distinct approvers a request of risk needs under the settings.
func (s GatewaySettings) RequiredApprovals(risk string) int {
	if risk == RiskHigh && s.HighRiskApprovers > 1 {
		return s.HighRiskApprovers
	}
	return 1
}

// Approval statuses. A request is pending until enough admins approve it (approved), one denies it, or it expires;
// an approved request is forwarding while linsync sends it, then forwarded with Linear's answer, failed when it
// could not be sent, or outcome_unknown when a send may have reached Linear but its answer was lost: it is never sent
// twice.
const (
	ApprovalPending        = "pending"
	ApprovalApproved       = "approved"
	ApprovalDenied         = "denied"
	ApprovalExpired        = "expired"
	ApprovalForwarding     = "forwarding"
	ApprovalForwarded      = "forwarded"
	ApprovalFailed         = "failed"
	ApprovalOutcomeUnknown = "outcome_unknown"
)

// ApprovalFinal reports whether an approval in status will not change again.
func ApprovalFinal(status string) bool {
	switch status {
	case ApprovalDenied, ApprovalExpired, ApprovalForwarded, ApprovalFailed, ApprovalOutcomeUnknown:
		return true
	}
	return false
}

// Approver is an admin who decided on a held request: the API token that did it, by id and name.
type Approver struct {
	TokenID   string    `json:"token_id"`
	TokenName string    `json:"token_name"`
	At        time.Time `json:"at"`
}

// GatewayApproval is an agent's request held for a human decision, without the request itself (kept encrypted).
type GatewayApproval struct {
	ID            string          `json:"id"`
	WorkspaceID   string          `json:"workspace_id"`
	AgentKeyID    string          `json:"agent_key_id"`
	AgentKeyName  string          `json:"agent_key_name"`
	AgentID       string          `json:"agent_id"`
	OperationName string          `json:"operation_name"`
	OperationType string          `json:"operation_type"`
	NameMismatch  string          `json:"name_mismatch,omitempty"`
	Actions       []GatewayAction `json:"actions"`
	Risk          string          `json:"risk"`
	Complexity    int             `json:"complexity"`
	// RequestHash is the SHA-256 of the normalized document and variables; an approval names it, so it approves
	// exactly the request its approver saw.
	RequestHash       string     `json:"request_hash"`
	VariableNames     []string   `json:"variable_names"`
	Status            string     `json:"status"`
	RequiredApprovals int        `json:"required_approvals"`
	Approvers         []Approver `json:"approvers"`
	DeniedBy          *Approver  `json:"denied_by,omitempty"`
	Reason            string     `json:"reason,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	ExpiresAt         time.Time  `json:"expires_at"`
	DecidedAt         *time.Time `json:"decided_at,omitempty"`
	ForwardedAt       *time.Time `json:"forwarded_at,omitempty"`
	LinearStatus      int        `json:"linear_status,omitempty"`
	LatencyMS         int64      `json:"latency_ms,omitempty"`
	// ResponseFetched says the agent already took Linear's answer, which is then forgotten.
	ResponseFetched bool   `json:"response_fetched"`
	WorkflowID      string `json:"workflow_id"`
}

// GatewayRequest is what an agent sends the proxy, as Linear's GraphQL endpoint accepts it. It is kept only
// encrypted at rest, and never in a workflow's history.
type GatewayRequest struct {
	Query         string          `json:"query"`
	Variables     json.RawMessage `json:"variables,omitempty"`
	OperationName string          `json:"operationName,omitempty"`
}

// Audit decisions of gateway calls.
const (
	DecisionAllowed          = "allowed"
	DecisionDenied           = "denied"
	DecisionRefused          = "refused"
	DecisionApprovalRequired = "approval_required"
	DecisionApproved         = "approved"
	DecisionRejected         = "rejected"
	DecisionExpired          = "expired"
	DecisionOutcomeUnknown   = "outcome_unknown"
	DecisionFailed           = "failed"
)

// GatewayAuditEntry is one record of the gateway's audit trail: what an agent asked, how it was classified and
// decided, and what Linear answered, with nothing of the request's content but its hash and variable names. Each
// entry carries the hash of the previous one of its workspace, so a changed, removed or reordered entry breaks the
// chain (VerifyAuditChain).
type GatewayAuditEntry struct {
	WorkspaceID   string    `json:"workspace_id"`
	Seq           int64     `json:"seq"`
	At            time.Time `json:"at"`
	AgentKeyID    string    `json:"agent_key_id,omitempty"`
	AgentKeyName  string    `json:"agent_key_name,omitempty"`
	AgentID       string    `json:"agent_id,omitempty"`
	OperationName string    `json:"operation_name,omitempty"`
	OperationType string    `json:"operation_type,omitempty"`
	// NameMismatch, when set, says how the operation's name misrepresents what its root fields do: a name like
	// IssueCreate on an issueDelete. The root fields decide; the name is only recorded.
	NameMismatch  string     `json:"name_mismatch,omitempty"`
	Actions       []string   `json:"actions"`
	Risk          string     `json:"risk,omitempty"`
	Decision      string     `json:"decision"`
	Reason        string     `json:"reason,omitempty"`
	ApprovalID    string     `json:"approval_id,omitempty"`
	Approvers     []Approver `json:"approvers,omitempty"`
	LinearStatus  int        `json:"linear_status,omitempty"`
	LatencyMS     int64      `json:"latency_ms"`
	Complexity    int        `json:"complexity"`
	RequestHash   string     `json:"request_hash,omitempty"`
	VariableNames []string   `json:"variable_names,omitempty"`
	PrevHash      string     `json:"prev_hash"`
	Hash          string     `json:"hash"`
}

// AuditHash is the hash of an entry chained to the previous one: SHA-256 over the previous hash and the entry's
// content (every field but Hash, in a fixed order, the time in UTC to the microsecond as the store keeps it).
func AuditHash(e GatewayAuditEntry) string {
	e.Hash = ""
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.Approvers = slices.Clone(e.Approvers)
	if e.Actions == nil {
		e.Actions = []string{}
	}
	for i := range e.Approvers {
		e.Approvers[i].At = e.Approvers[i].At.UTC().Truncate(time.Microsecond)
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("marshal audit entry: %v", err)) // only plain values: cannot fail
	}
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// AuditVerification is the result of checking a workspace's audit chain.
type AuditVerification struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	HeadSeq int64  `json:"head_seq"`
	Head    string `json:"head_hash,omitempty"`
	// BrokenAt is the sequence number of the first entry that does not fit the chain, and Problem says how.
	BrokenAt int64  `json:"broken_at,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// AuditChecker checks a chain entry by entry, in sequence order, against the head the store recorded last.
type AuditChecker struct {
	res      AuditVerification
	prevHash string
	prevSeq  int64
}

// Add checks the next entry; after the first problem it ignores the rest.
func (c *AuditChecker) Add(e GatewayAuditEntry) {
	if c.res.Problem != "" {
		return
	}
	c.res.Entries++
	switch {
	case e.Seq != c.prevSeq+1:
		c.fail(c.prevSeq+1, fmt.Sprintf("entry %d is missing (next is %d)", c.prevSeq+1, e.Seq))
	case e.PrevHash != c.prevHash:
		c.fail(e.Seq, "its previous hash does not match the entry before it")
	case AuditHash(e) != e.Hash:
		c.fail(e.Seq, "its content does not match its hash")
	}
	c.prevHash, c.prevSeq = e.Hash, e.Seq
}

func (c *AuditChecker) fail(seq int64, problem string) {
	c.res.BrokenAt, c.res.Problem = seq, problem
}

// Result finishes the check against the head the store recorded: a chain shorter than its head lost its last
// entries.
func (c *AuditChecker) Result(headSeq int64, headHash string) AuditVerification {
	r := c.res
	r.HeadSeq, r.Head = headSeq, headHash
	if r.Problem == "" && (c.prevSeq != headSeq || c.prevHash != headHash) {
		r.BrokenAt, r.Problem = c.prevSeq+1, fmt.Sprintf("the chain ends at %d but its head is %d", c.prevSeq, headSeq)
	}
	r.OK = r.Problem == ""
	return r
}

// GatewayAuditFilter selects audit entries; zero fields match everything.
type GatewayAuditFilter struct {
	WorkspaceID string
	AgentKeyID  string
	AgentID     string
	Decision    string
	Action      string
	Risk        string
	Since       time.Time
	Until       time.Time
	// Before is the pagination cursor: the sequence number of the last entry of the previous page.
	Before int64
	Limit  int
}

// AuditEntry is the audit record of a decision on the held request: its classification, who decided, and, once
// forwarded, Linear's status and latency.
func (a *GatewayApproval) AuditEntry(decision, reason string) GatewayAuditEntry {
	e := GatewayAuditEntry{WorkspaceID: a.WorkspaceID, AgentKeyID: a.AgentKeyID, AgentKeyName: a.AgentKeyName,
		AgentID: a.AgentID, OperationName: a.OperationName, OperationType: a.OperationType, NameMismatch: a.NameMismatch,
		Actions: ActionNames(a.Actions), Risk: a.Risk, Decision: decision, Reason: reason, ApprovalID: a.ID,
		Approvers: slices.Clone(a.Approvers), LinearStatus: a.LinearStatus, LatencyMS: a.LatencyMS,
		Complexity: a.Complexity, RequestHash: a.RequestHash, VariableNames: slices.Clone(a.VariableNames)}
	if a.DeniedBy != nil {
		e.Approvers = append(e.Approvers, *a.DeniedBy)
	}
	return e
}
