package linsync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Notification target kinds: a Slack incoming webhook, or a generic HTTPS endpoint that receives a signed JSON event.
const (
	NotifySlack   = "slack"
	NotifyWebhook = "webhook"
)

// NotificationTarget is where notifications go, as stored and shown: its URL (a secret for Slack, whose incoming
// webhook URL is its own credential) and, for a generic webhook, its signing secret are sealed at rest and shown
// only by their last four characters.
type NotificationTarget struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspace_id"`
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	URLLast4    string    `json:"url_last4"`
	SecretLast4 string    `json:"secret_last4,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// NotificationTargetInput creates a target. Secret is made by the caller (the API) for a webhook target.
type NotificationTargetInput struct {
	Name   string
	Kind   string
	URL    string
	Secret string
}

// NotificationMatch is what a rule matches on; every criterion that is set must hold, and a list criterion holds
// when any of its entries does. A criterion that only an entity type can meet (state types, SLA actions, project
// state, cycle completion) restricts the rule to that type.
type NotificationMatch struct {
	// Types are Linear event types (Issue, IssueSLA, Project, ProjectUpdate, Cycle, Comment, …).
	Types []string `json:"types,omitempty"`
	// Actions are Linear's actions (create, update, remove, …).
	Actions []string `json:"actions,omitempty"`
	// ChangedKeys are keys of the delivery's updatedFrom: the rule holds when any of them changed.
	ChangedKeys []string `json:"changed_keys,omitempty"`
	// StateTypes are the issue's new state's type: triage, backlog, unstarted, started, completed, canceled.
	StateTypes []string `json:"state_types,omitempty"`
	// Teams are team keys (ENG) or ids.
	Teams []string `json:"teams,omitempty"`
	// Labels are label names, compared without case.
	Labels []string `json:"labels,omitempty"`
	// PriorityAtLeast is Linear's priority (1 urgent … 4 low): the issue's is set and at least as urgent.
	PriorityAtLeast *int `json:"priority_at_least,omitempty"`
	// SLAActions are IssueSLA actions: set, highRisk, breached.
	SLAActions []string `json:"sla_actions,omitempty"`
	// ProjectStateChanged matches a Project update whose status changed.
	ProjectStateChanged bool `json:"project_state_changed,omitempty"`
	// CycleCompleted matches a Cycle update that completed it.
	CycleCompleted bool `json:"cycle_completed,omitempty"`
}

// empty reports whether m sets no criterion at all (a rule would fire on every delivery).
func (m NotificationMatch) empty() bool {
	return len(m.Types) == 0 && len(m.Actions) == 0 && len(m.ChangedKeys) == 0 && len(m.StateTypes) == 0 &&
		len(m.Teams) == 0 && len(m.Labels) == 0 && m.PriorityAtLeast == nil && len(m.SLAActions) == 0 &&
		!m.ProjectStateChanged && !m.CycleCompleted
}

// NotificationRule sends a message to its targets for every delivery it matches.
type NotificationRule struct {
	ID          string            `json:"id"`
	WorkspaceID string            `json:"workspace_id"`
	Name        string            `json:"name"`
	Enabled     bool              `json:"enabled"`
	Match       NotificationMatch `json:"match"`
	TargetIDs   []string          `json:"target_ids"`
	// Template is a Go text/template for the message; "" is the default of the event's type.
	Template string `json:"template,omitempty"`
	// DigestMinutes > 0 collects the rule's matches for that long and sends them as one message.
	DigestMinutes int `json:"digest_minutes,omitempty"`
	// NotifyOnOwnChanges also notifies of changes linsync itself wrote to Linear (off: they are echoes).
	NotifyOnOwnChanges bool      `json:"notify_on_own_changes,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// NotificationEvent is a decoded Linear delivery as rules see it and templates render it (linear.NotificationEvent
// builds one). Values are Linear's, unescaped.
type NotificationEvent struct {
	DeliveryID string `json:"delivery_id,omitempty"`
	Type       string `json:"type"`
	Action     string `json:"action"`
	// Changed are the keys of updatedFrom, sorted, without updatedAt.
	Changed []string `json:"changed,omitempty"`
	ActorID string   `json:"actor_id,omitempty"`
	Actor   string   `json:"actor,omitempty"`
	URL     string   `json:"url,omitempty"`
	// Own is set when the change is linsync's own write coming back (its actor is the connection's Linear user).
	Own           bool                       `json:"own,omitempty"`
	Issue         *NotificationIssue         `json:"issue,omitempty"`
	Project       *NotificationProject       `json:"project,omitempty"`
	ProjectUpdate *NotificationProjectUpdate `json:"project_update,omitempty"`
	Cycle         *NotificationCycle         `json:"cycle,omitempty"`
}

// NotificationIssue is the issue of an Issue or IssueSLA delivery.
type NotificationIssue struct {
	ID            string   `json:"id"`
	Identifier    string   `json:"identifier,omitempty"`
	Title         string   `json:"title"`
	URL           string   `json:"url,omitempty"`
	State         string   `json:"state,omitempty"`
	StateType     string   `json:"state_type,omitempty"`
	TeamID        string   `json:"team_id,omitempty"`
	TeamKey       string   `json:"team_key,omitempty"`
	Assignee      string   `json:"assignee,omitempty"`
	Priority      int      `json:"priority"`
	PriorityLabel string   `json:"priority_label,omitempty"`
	Labels        []string `json:"labels,omitempty"`
}

// NotificationProject is the project of a Project delivery.
type NotificationProject struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	URL          string   `json:"url,omitempty"`
	State        string   `json:"state,omitempty"`
	StateChanged bool     `json:"state_changed,omitempty"`
	TeamIDs      []string `json:"team_ids,omitempty"`
}

// NotificationProjectUpdate is a project update (a status post) of a ProjectUpdate delivery.
type NotificationProjectUpdate struct {
	ID          string `json:"id"`
	Body        string `json:"body"`
	ProjectID   string `json:"project_id,omitempty"`
	ProjectName string `json:"project_name,omitempty"`
	URL         string `json:"url,omitempty"`
	Health      string `json:"health,omitempty"`
	Author      string `json:"author,omitempty"`
}

// NotificationCycle is the cycle of a Cycle delivery.
type NotificationCycle struct {
	ID        string `json:"id"`
	Number    int    `json:"number"`
	Name      string `json:"name,omitempty"`
	TeamID    string `json:"team_id,omitempty"`
	Completed bool   `json:"completed,omitempty"`
}

// Enumerations a rule's criteria are checked against.
var (
	NotificationStateTypes = []string{"triage", "backlog", "unstarted", "started", "completed", "canceled", "duplicate"}
	NotificationSLAActions = []string{"set", "highRisk", "breached"}
)

// MatchNotification reports whether rule fires for ev: it is enabled, ev is not linsync's own write (unless the rule
// wants those), and every criterion it sets holds.
func MatchNotification(rule NotificationRule, ev NotificationEvent) bool {
	m := rule.Match
	if !rule.Enabled || m.empty() || (ev.Own && !rule.NotifyOnOwnChanges) {
		return false
	}
	if len(m.Types) > 0 && !slices.Contains(m.Types, ev.Type) {
		return false
	}
	if len(m.Actions) > 0 && !slices.Contains(m.Actions, ev.Action) {
		return false
	}
	if len(m.ChangedKeys) > 0 && !slices.ContainsFunc(m.ChangedKeys, func(k string) bool { return slices.Contains(ev.Changed, k) }) {
		return false
	}
	iss := ev.Issue
	if len(m.StateTypes) > 0 && (ev.Type != "Issue" || iss == nil || !slices.Contains(m.StateTypes, iss.StateType)) {
		return false
	}
	if len(m.SLAActions) > 0 && (ev.Type != "IssueSLA" || !slices.Contains(m.SLAActions, ev.Action)) {
		return false
	}
	if m.ProjectStateChanged && (ev.Project == nil || !ev.Project.StateChanged) {
		return false
	}
	if m.CycleCompleted && (ev.Cycle == nil || !ev.Cycle.Completed) {
		return false
	}
	if len(m.Teams) > 0 && !slices.ContainsFunc(m.Teams, func(t string) bool { return ev.inTeam(t) }) {
		return false
	}
	if len(m.Labels) > 0 && (iss == nil || !slices.ContainsFunc(m.Labels, func(l string) bool {
		return slices.ContainsFunc(iss.Labels, func(have string) bool { return strings.EqualFold(have, l) })
	})) {
		return false
	}
	if p := m.PriorityAtLeast; p != nil && (iss == nil || iss.Priority == 0 || iss.Priority > *p) {
		return false
	}
	return true
}

// inTeam reports whether the event's entity belongs to team (a key or an id).
func (ev NotificationEvent) inTeam(team string) bool {
	switch {
	case ev.Issue != nil:
		return team == ev.Issue.TeamID || (ev.Issue.TeamKey != "" && strings.EqualFold(team, ev.Issue.TeamKey))
	case ev.Cycle != nil:
		return team == ev.Cycle.TeamID
	case ev.Project != nil:
		return slices.Contains(ev.Project.TeamIDs, team)
	}
	return false
}

// NotificationTemplate is a built-in rule to start from.
type NotificationTemplate struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Match       NotificationMatch `json:"match"`
}

func intp(n int) *int { return &n }

// NotificationTemplates are the built-in rules, by name.
func NotificationTemplates() []NotificationTemplate {
	return []NotificationTemplate{
		{Name: "issue-completed", Description: "an issue moved to a completed state",
			Match: NotificationMatch{Types: []string{"Issue"}, Actions: []string{"update"}, ChangedKeys: []string{"stateId"}, StateTypes: []string{"completed"}}},
		{Name: "issue-assigned", Description: "an issue's assignee changed",
			Match: NotificationMatch{Types: []string{"Issue"}, Actions: []string{"update"}, ChangedKeys: []string{"assigneeId"}}},
		{Name: "urgent-issue-created", Description: "an urgent issue was created",
			Match: NotificationMatch{Types: []string{"Issue"}, Actions: []string{"create"}, PriorityAtLeast: intp(1)}},
		{Name: "sla-at-risk", Description: "an issue's SLA is at high risk or breached",
			Match: NotificationMatch{Types: []string{"IssueSLA"}, SLAActions: []string{"highRisk", "breached"}}},
		{Name: "project-state-changed", Description: "a project's status changed",
			Match: NotificationMatch{Types: []string{"Project"}, Actions: []string{"update"}, ProjectStateChanged: true}},
		{Name: "cycle-completed", Description: "a cycle was completed",
			Match: NotificationMatch{Types: []string{"Cycle"}, CycleCompleted: true}},
		{Name: "project-update-posted", Description: "a project update was posted",
			Match: NotificationMatch{Types: []string{"ProjectUpdate"}, Actions: []string{"create"}}},
	}
}

// FindNotificationTemplate returns the built-in rule called name.
func FindNotificationTemplate(name string) (NotificationTemplate, bool) {
	i := slices.IndexFunc(NotificationTemplates(), func(t NotificationTemplate) bool { return t.Name == name })
	if i < 0 {
		return NotificationTemplate{}, false
	}
	return NotificationTemplates()[i], true
}

// Limits of rules and messages.
const (
	MaxNotificationTemplateBytes = 2000
	// MaxNotificationText bounds a rendered message (Slack takes up to 40 000 characters, but reads badly past a
	// few thousand); a longer one is cut, a digest at a whole line.
	MaxNotificationText = 6000
	// MaxDigestLines is how many matches a digest lists by name; the rest are counted.
	MaxDigestLines = 50
)

// defaultTemplates is the message of each event type when a rule sets none: the entity as a link, what it is now,
// who changed it and what changed.
var defaultTemplates = map[string]string{
	"Issue": `{{link .Issue.URL .Issue.Identifier}} *{{.Issue.Title}}*` +
		`{{with .Issue.State}} · {{.}}{{end}}{{with .Issue.Assignee}} · assignee {{.}}{{end}}` +
		`{{with .Issue.PriorityLabel}} · {{.}}{{end}}{{with .Actor}} · by {{.}}{{end}}{{with .Changed}} · changed {{.}}{{end}}`,
	"IssueSLA": `SLA {{.Action}}: {{link .Issue.URL .Issue.Identifier}} *{{.Issue.Title}}*` +
		`{{with .Issue.State}} · {{.}}{{end}}{{with .Issue.Assignee}} · assignee {{.}}{{end}}{{with .Issue.PriorityLabel}} · {{.}}{{end}}`,
	"Project": `Project {{link .Project.URL .Project.Name}}{{with .Project.State}} is now *{{.}}*{{end}}` +
		`{{with .Actor}} · by {{.}}{{end}}{{with .Changed}} · changed {{.}}{{end}}`,
	"ProjectUpdate": `Project update on {{link .ProjectUpdate.URL .ProjectUpdate.ProjectName}}` +
		`{{with .ProjectUpdate.Health}} ({{.}}){{end}}{{with .ProjectUpdate.Author}} by {{.}}{{end}}: {{.ProjectUpdate.Body}}`,
	"Cycle": `Cycle {{.Cycle.Number}}{{with .Cycle.Name}} ({{.}}){{end}} {{if .Cycle.Completed}}completed{{else}}{{.Action}}{{end}}` +
		`{{with .Actor}} · by {{.}}{{end}}`,
}

// fallbackTemplate is the message of an event type without a default of its own.
const fallbackTemplate = `{{.Type}} {{.Action}}{{with .URL}} {{link . "open"}}{{end}}{{with .Actor}} · by {{.}}{{end}}{{with .Changed}} · changed {{.}}{{end}}`

// notificationView is what a template sees: the event, every string escaped for the target (Slack mrkdwn treats
// &, < and > as markup: a title "<!channel>" must not ping a channel), and Changed as one readable string.
type notificationView struct {
	DeliveryID    string
	Type          string
	Action        string
	Changed       string
	Actor         string
	URL           string
	Issue         NotificationIssue
	Project       NotificationProject
	ProjectUpdate NotificationProjectUpdate
	Cycle         NotificationCycle
}

// changedNames are readable names of Linear's updatedFrom keys.
var changedNames = map[string]string{"stateId": "state", "assigneeId": "assignee", "priority": "priority",
	"title": "title", "labelIds": "labels", "teamId": "team", "projectId": "project", "cycleId": "cycle",
	"dueDate": "due date", "estimate": "estimate", "description": "description", "parentId": "parent",
	"statusId": "status", "completedAt": "completion"}

func viewOf(ev NotificationEvent, esc func(string) string) notificationView {
	v := notificationView{DeliveryID: ev.DeliveryID, Type: esc(ev.Type), Action: esc(ev.Action), Actor: esc(ev.Actor), URL: ev.URL}
	var names []string
	for _, k := range ev.Changed {
		if n, ok := changedNames[k]; ok {
			names = append(names, n)
		} else {
			names = append(names, esc(k))
		}
	}
	v.Changed = strings.Join(names, ", ")
	if i := ev.Issue; i != nil {
		v.Issue = NotificationIssue{ID: i.ID, Identifier: esc(i.Identifier), Title: esc(i.Title), URL: i.URL,
			State: esc(i.State), StateType: i.StateType, TeamID: i.TeamID, TeamKey: esc(i.TeamKey), Assignee: esc(i.Assignee),
			Priority: i.Priority, PriorityLabel: esc(i.PriorityLabel)}
		for _, l := range i.Labels {
			v.Issue.Labels = append(v.Issue.Labels, esc(l))
		}
		if v.Issue.Identifier == "" {
			v.Issue.Identifier = "issue"
		}
	}
	if p := ev.Project; p != nil {
		v.Project = NotificationProject{ID: p.ID, Name: esc(p.Name), URL: p.URL, State: esc(p.State), StateChanged: p.StateChanged}
	}
	if u := ev.ProjectUpdate; u != nil {
		v.ProjectUpdate = NotificationProjectUpdate{ID: u.ID, Body: esc(truncate(u.Body, 500)), ProjectID: u.ProjectID,
			ProjectName: esc(u.ProjectName), URL: u.URL, Health: esc(u.Health), Author: esc(u.Author)}
		if v.ProjectUpdate.ProjectName == "" {
			v.ProjectUpdate.ProjectName = "a project"
		}
	}
	if c := ev.Cycle; c != nil {
		v.Cycle = NotificationCycle{ID: c.ID, Number: c.Number, Name: esc(c.Name), TeamID: c.TeamID, Completed: c.Completed}
	}
	return v
}

// SlackEscape escapes the three characters Slack's mrkdwn reads as markup.
func SlackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func plain(s string) string { return s }

// linkFunc renders a link for kind: Slack's <url|text>, or "text (url)" in plain text. A URL that is not http(s)
// is left out, so a template cannot smuggle markup through it.
func linkFunc(kind string) func(u, text string) string {
	return func(u, text string) string {
		p, err := url.Parse(u)
		if u == "" || err != nil || (p.Scheme != "https" && p.Scheme != "http") || strings.ContainsAny(u, "|<> \n") {
			return text
		}
		if kind == NotifySlack {
			return "<" + u + "|" + text + ">"
		}
		return text + " (" + u + ")"
	}
}

// parseNotificationTemplate parses a rule's template (or the event type's default) for kind.
func parseNotificationTemplate(kind, text, eventType string) (*template.Template, error) {
	if text == "" {
		text = defaultTemplates[eventType]
		if text == "" {
			text = fallbackTemplate
		}
	}
	return template.New("message").Option("missingkey=error").
		Funcs(template.FuncMap{"link": linkFunc(kind)}).Parse(text)
}

// NotificationMessage is a rendered message: the text, and the HTTP body a target of its kind receives.
type NotificationMessage struct {
	TargetKind string          `json:"target_kind"`
	Text       string          `json:"text"`
	Body       json.RawMessage `json:"body"`
}

// RenderNotification renders rule's message about ev for a target of kind: Slack's {"text": …} with mrkdwn links,
// or the generic webhook's JSON event, which carries the event itself beside the plain-text message.
func RenderNotification(kind string, rule NotificationRule, ev NotificationEvent) (NotificationMessage, error) {
	text, err := renderText(kind, rule, ev)
	if err != nil {
		return NotificationMessage{}, err
	}
	return notificationBody(kind, rule, text, ev.DeliveryID, []NotificationEvent{ev})
}

func renderText(kind string, rule NotificationRule, ev NotificationEvent) (string, error) {
	t, err := parseNotificationTemplate(kind, rule.Template, ev.Type)
	if err != nil {
		return "", &Error{Code: EUNPROCESSABLE, Field: "template", Message: "template does not parse: " + err.Error()}
	}
	esc := plain
	if kind == NotifySlack {
		esc = SlackEscape
	}
	var b bytes.Buffer
	if err := t.Execute(&b, viewOf(ev, esc)); err != nil {
		return "", &Error{Code: EUNPROCESSABLE, Field: "template", Message: "template does not render: " + err.Error()}
	}
	return truncate(strings.TrimSpace(b.String()), MaxNotificationText), nil
}

// RenderNotificationDigest renders one message listing evs, the matches of rule within one digest window.
func RenderNotificationDigest(kind string, rule NotificationRule, window string, evs []NotificationEvent) (NotificationMessage, error) {
	esc := plain
	if kind == NotifySlack {
		esc = SlackEscape
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d matches of %s:", len(evs), esc(rule.Name))
	link := linkFunc(kind)
	for i, ev := range evs {
		var line string
		switch v := viewOf(ev, esc); {
		case ev.Issue != nil:
			line = link(v.Issue.URL, v.Issue.Identifier) + " " + v.Issue.Title
			if v.Issue.State != "" {
				line += " · " + v.Issue.State
			}
		case ev.Project != nil:
			line = link(v.Project.URL, v.Project.Name) + " " + v.Project.State
		case ev.Cycle != nil:
			line = "cycle " + strconv.Itoa(v.Cycle.Number) + " " + v.Action
		case ev.ProjectUpdate != nil:
			line = "update on " + link(v.ProjectUpdate.URL, v.ProjectUpdate.ProjectName)
		default:
			line = v.Type + " " + v.Action
		}
		line = "\n• " + truncate(line, 300)
		if i == MaxDigestLines || b.Len()+len(line) > MaxNotificationText-40 {
			fmt.Fprintf(&b, "\n… and %d more", len(evs)-i)
			break
		}
		b.WriteString(line)
	}
	return notificationBody(kind, rule, truncate(b.String(), MaxNotificationText), window, evs)
}

func notificationBody(kind string, rule NotificationRule, text, id string, evs []NotificationEvent) (NotificationMessage, error) {
	var body any = map[string]string{"text": text}
	if kind != NotifySlack {
		wb := map[string]any{"type": "linsync.notification", "id": id, "text": text,
			"rule": map[string]string{"id": rule.ID, "name": rule.Name}}
		if len(evs) == 1 {
			wb["event"] = evs[0]
		} else {
			wb["type"], wb["events"] = "linsync.notification_digest", evs
		}
		body = wb
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return NotificationMessage{}, fmt.Errorf("encode notification: %w", err)
	}
	return NotificationMessage{TargetKind: kind, Text: text, Body: raw}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s[:n])
	return string(r[:len(r)-1]) + "…"
}

// sampleEvents are one event of every type with a default template, for checking a rule's template when it is saved.
func sampleEvents() []NotificationEvent {
	return []NotificationEvent{
		{Type: "Issue", Action: "update", Changed: []string{"stateId"}, Actor: "A", URL: "https://linear.app/x",
			Issue: &NotificationIssue{ID: "i", Identifier: "ENG-1", Title: "t", URL: "https://linear.app/x", State: "Done", StateType: "completed"}},
		{Type: "IssueSLA", Action: "breached", Issue: &NotificationIssue{ID: "i", Identifier: "ENG-1", Title: "t"}},
		{Type: "Project", Action: "update", Project: &NotificationProject{ID: "p", Name: "P", State: "started", StateChanged: true}},
		{Type: "ProjectUpdate", Action: "create", ProjectUpdate: &NotificationProjectUpdate{ID: "u", Body: "b"}},
		{Type: "Cycle", Action: "update", Cycle: &NotificationCycle{ID: "c", Number: 3, Completed: true}},
	}
}

// CheckNotificationRule validates a rule without the store: its name, criteria, template (which must parse and
// render every sample event of the types the rule can match), targets and digest. Errors name the field.
func CheckNotificationRule(r NotificationRule) error {
	bad := func(field, format string, args ...any) error {
		return &Error{Code: EUNPROCESSABLE, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	m := r.Match
	switch {
	case strings.TrimSpace(r.Name) == "" || len(r.Name) > 100:
		return bad("name", "name is 1 to 100 characters")
	case m.empty():
		return bad("match", "a rule needs at least one criterion (types, actions, changed_keys, state_types, teams, labels, priority_at_least, sla_actions, project_state_changed or cycle_completed)")
	case len(r.TargetIDs) == 0:
		return bad("target_ids", "a rule needs at least one target")
	case len(r.TargetIDs) > 10:
		return bad("target_ids", "at most 10 targets")
	case r.DigestMinutes < 0 || r.DigestMinutes > 1440:
		return bad("digest_minutes", "digest_minutes is 0 (no digest) to 1440 (a day)")
	case len(r.Template) > MaxNotificationTemplateBytes:
		return bad("template", "template is at most %d bytes", MaxNotificationTemplateBytes)
	case m.PriorityAtLeast != nil && (*m.PriorityAtLeast < 1 || *m.PriorityAtLeast > 4):
		return bad("match.priority_at_least", "priority_at_least is Linear's 1 (urgent), 2 (high), 3 (medium) or 4 (low)")
	}
	lists := []struct {
		field string
		vals  []string
		in    []string
	}{
		{"match.types", m.Types, nil}, {"match.actions", m.Actions, nil}, {"match.changed_keys", m.ChangedKeys, nil},
		{"match.state_types", m.StateTypes, NotificationStateTypes}, {"match.teams", m.Teams, nil},
		{"match.labels", m.Labels, nil}, {"match.sla_actions", m.SLAActions, NotificationSLAActions},
	}
	for _, l := range lists {
		if len(l.vals) > 20 {
			return bad(l.field, "at most 20 entries")
		}
		for i, v := range l.vals {
			field := l.field + "[" + strconv.Itoa(i) + "]"
			if strings.TrimSpace(v) == "" || len(v) > 100 {
				return bad(field, "an entry is 1 to 100 characters")
			}
			if l.in != nil && !slices.Contains(l.in, v) {
				return bad(field, "must be one of %s", strings.Join(l.in, ", "))
			}
		}
	}
	for i, id := range r.TargetIDs {
		if !uuidShape.MatchString(id) {
			return bad("target_ids["+strconv.Itoa(i)+"]", "a target id is a UUID")
		}
	}
	for _, ev := range sampleEvents() {
		rr := r
		rr.Enabled, rr.NotifyOnOwnChanges = true, true
		if len(m.Types) > 0 && !slices.Contains(m.Types, ev.Type) {
			continue
		}
		for _, kind := range []string{NotifySlack, NotifyWebhook} {
			if _, err := renderText(kind, rr, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// NotificationMessageID is the Standard Webhooks webhook-id of a message: stable per (delivery or digest window,
// rule, target), so a receiver can drop a retry it already has.
func NotificationMessageID(deliveryID, ruleID, targetID string) string {
	return "msg_" + shortHash(deliveryID+"|"+ruleID+"|"+targetID)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// SignStandardWebhook is the Standard Webhooks signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>", the one
// signer of linsync's outbound messages (the Q&A app's callbacks, notification webhooks). A secret written as
// "whsec_<base64>" signs with the decoded bytes, as Standard Webhooks libraries do.
func SignStandardWebhook(secret []byte, id, timestamp string, body []byte) string {
	key := secret
	if rest, ok := strings.CutPrefix(string(secret), "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil {
			key = k
		}
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// StandardWebhookHeaders are the headers of a message signed at at: webhook-id (stable across retries, so the
// receiver can deduplicate), webhook-timestamp (Unix seconds) and webhook-signature.
func StandardWebhookHeaders(secret []byte, id string, at time.Time, body []byte) map[string]string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return map[string]string{"webhook-id": id, "webhook-timestamp": ts,
		"webhook-signature": SignStandardWebhook(secret, id, ts, body)}
}

// PublicAddr reports whether a is an address on the public internet: not loopback, private, link-local, multicast,
// unspecified, or one of the ranges that lead back inside (carrier-grade NAT, NAT64, benchmarking, reserved). The
// outbound client checks it on the address it dials; the API checks a target's host with it when it is created.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// notPublic are ranges that IsGlobalUnicast counts as global but that do not lead to the public internet, or lead
// back inside: a NAT64 prefix reaches any IPv4 address, private ones included, through the local translator.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT shared space (RFC 6598)
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network" (RFC 791); 0.x.y.z reaches the local host on some stacks
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking (RFC 2544), used inside data centres
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved (RFC 1112), and the broadcast address
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 well-known prefix (RFC 6052)
	netip.MustParsePrefix("64:ff9b:1::/48"), // NAT64 local-use prefix (RFC 8215)
}
