package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/linsync/linsync"
)

// ---- notifications: targets, rules, the simulator and test messages ----

// notifyTypes are the Linear event types the rule form offers; a saved rule's other types are offered too.
var notifyTypes = []string{"Issue", "IssueSLA", "Comment", "Project", "ProjectUpdate", "Cycle", "IssueLabel", "Reaction"}

type notifyData struct {
	Targets     []linsync.NotificationTarget
	TargetNames map[string]string
	Rules       []notifyRuleRow
	Templates   []linsync.NotificationTemplate
	Errors      []string

	// NewSecret is a signed webhook's signing secret, shown once, right after the target is created.
	NewSecret       string
	NewSecretTarget string
	Tests           map[string]*testResult
	TargetForm      targetForm
	TargetErr       *apiError

	// The rule editor: a rule being added (EditID "") or edited.
	EditID       string
	Form         linsync.NotificationRule
	RuleErr      *apiError
	FromTemplate string
	TemplateErr  *apiError
	TypeOptions  []string
	StateTypes   []string
	SLAActions   []string

	SimJSON       string
	SimDeliveryID string
	Sim           *notifySim
	SimErr        *apiError
}

type targetForm struct{ Name, Kind, URL string }

type notifyRuleRow struct {
	linsync.NotificationRule
	Words   string
	Targets []string
}

type testResult struct {
	HTTPStatus int    `json:"http_status"`
	Status     string `json:"status"`
	Error      string `json:"error"`
}

// notifySim is the API's answer to notification-rules:simulate, and that answer as it came.
type notifySim struct {
	Rules []struct {
		RuleID        string `json:"rule_id"`
		RuleName      string `json:"rule_name"`
		DigestMinutes int    `json:"digest_minutes"`
		Messages      []struct {
			TargetID   string `json:"target_id"`
			TargetName string `json:"target_name"`
			TargetKind string `json:"target_kind"`
			Text       string `json:"text"`
		} `json:"messages"`
	} `json:"rules"`
	RulesEvaluated int `json:"rules_evaluated"`
	Raw            string
}

// notifyPage renders the page with d; an answer to a POST takes the page's own address (htmx), so reloading it is a GET.
func (c *Console) notifyPage(w http.ResponseWriter, r *http.Request, s *session, status int, d notifyData) {
	p := c.newPage(r, s, "notifications", "Notifications")
	targets, err := listAll[linsync.NotificationTarget](c, r, s, "/notification-targets", "targets")
	if err != nil {
		d.Errors = append(d.Errors, "targets: "+errorText(err))
	}
	d.Targets = targets
	d.TargetNames = map[string]string{}
	for _, t := range d.Targets {
		d.TargetNames[t.ID] = t.Name
	}
	rules, err := listAll[linsync.NotificationRule](c, r, s, "/notification-rules", "rules")
	if err != nil {
		d.Errors = append(d.Errors, "rules: "+errorText(err))
	}
	d.Rules = nil
	for _, rule := range rules {
		row := notifyRuleRow{NotificationRule: rule, Words: describeMatch(rule)}
		for _, id := range rule.TargetIDs {
			row.Targets = append(row.Targets, firstNonEmpty(d.TargetNames[id], id))
		}
		d.Rules = append(d.Rules, row)
	}
	var tpl struct {
		Templates []linsync.NotificationTemplate `json:"templates"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/notification-rules/templates", nil, &tpl); err != nil {
		d.Errors = append(d.Errors, "templates: "+errorText(err))
	}
	d.Templates = tpl.Templates
	d.TypeOptions = slices.Clone(notifyTypes)
	for _, t := range d.Form.Match.Types {
		if !slices.Contains(d.TypeOptions, t) {
			d.TypeOptions = append(d.TypeOptions, t)
		}
	}
	d.StateTypes, d.SLAActions = linsync.NotificationStateTypes, linsync.NotificationSLAActions
	if d.TargetForm.Kind == "" {
		d.TargetForm.Kind = linsync.NotifyWebhook
	}
	p.Data = d
	if r.Method == http.MethodPost && r.Header.Get("HX-Boosted") == "true" {
		w.Header().Set("HX-Push-Url", Prefix+"/notifications")
	}
	c.render(w, status, "notifications", p)
}

// listAll reads every page of a list the API pages (up to 1000 items).
func listAll[T any](c *Console, r *http.Request, s *session, path, key string) ([]T, error) {
	var all []T
	cursor := ""
	for range 10 {
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page map[string]json.RawMessage
		if _, err := c.call(r, s, http.MethodGet, path+"?"+q.Encode(), nil, &page); err != nil {
			return all, err
		}
		var items []T
		if len(page[key]) == 0 {
			break
		}
		if err := json.Unmarshal(page[key], &items); err != nil {
			return all, err
		}
		all = append(all, items...)
		cursor = ""
		if json.Unmarshal(page["next_cursor"], &cursor) != nil || cursor == "" {
			break
		}
	}
	return all, nil
}

func (c *Console) handleNotifications(w http.ResponseWriter, r *http.Request, s *session) {
	d := notifyData{Form: linsync.NotificationRule{Enabled: true}, FromTemplate: r.URL.Query().Get("template")}
	if id := r.URL.Query().Get("edit"); id != "" {
		var one struct {
			Rule linsync.NotificationRule `json:"rule"`
		}
		if _, err := c.call(r, s, http.MethodGet, "/notification-rules/"+url.PathEscape(id), nil, &one); err != nil {
			d.Errors = append(d.Errors, "rule: "+errorText(err))
		} else {
			d.EditID, d.Form = one.Rule.ID, one.Rule
		}
	}
	c.notifyPage(w, r, s, http.StatusOK, d)
}

// handleTargetCreate adds a target; a signed webhook's signing secret is in this one answer and never again.
func (c *Console) handleTargetCreate(w http.ResponseWriter, r *http.Request, s *session) {
	f := targetForm{Name: strings.TrimSpace(r.PostForm.Get("name")), Kind: r.PostForm.Get("kind"), URL: strings.TrimSpace(r.PostForm.Get("url"))}
	d := notifyData{Form: linsync.NotificationRule{Enabled: true}}
	var out struct {
		Target linsync.NotificationTarget `json:"target"`
		Secret string                     `json:"secret"`
	}
	if _, err := c.call(r, s, http.MethodPost, "/notification-targets", map[string]any{"name": f.Name, "kind": f.Kind, "url": f.URL}, &out); err != nil {
		d.TargetForm, d.TargetErr = f, asAPIError(err)
		c.notifyPage(w, r, s, statusOf(err), d)
		return
	}
	d.NewSecret, d.NewSecretTarget = out.Secret, out.Target.Name
	c.notifyPage(w, r, s, http.StatusOK, d)
}

func (c *Console) handleTargetDelete(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.call(r, s, http.MethodDelete, "/notification-targets/"+url.PathEscape(r.PathValue("id")), nil, nil); err != nil {
		c.notifyPage(w, r, s, statusOf(err), notifyData{Form: linsync.NotificationRule{Enabled: true}, Errors: []string{errorText(err)}})
		return
	}
	http.Redirect(w, r, Prefix+"/notifications?done=target-del", http.StatusSeeOther)
}

// handleTargetTest sends one test message (POST …/notification-targets/{id}:test) and shows what the target answered
// beside it.
func (c *Console) handleTargetTest(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var res testResult
	if _, err := c.call(r, s, http.MethodPost, "/notification-targets/"+url.PathEscape(id)+":test", nil, &res); err != nil {
		res = testResult{Status: "failed", Error: errorText(err)}
	}
	c.notifyPage(w, r, s, http.StatusOK, notifyData{Form: linsync.NotificationRule{Enabled: true}, Tests: map[string]*testResult{id: &res}})
}

// ruleFromNotifyForm reads the rule editor.
func ruleFromNotifyForm(f url.Values) (linsync.NotificationRule, *apiError) {
	rule := linsync.NotificationRule{
		ID: f.Get("rule_id"), Name: strings.TrimSpace(f.Get("name")), Enabled: f.Get("enabled") != "",
		TargetIDs: nonEmpty(f["target_ids"]), Template: f.Get("template"), NotifyOnOwnChanges: f.Get("own") != "",
		Match: linsync.NotificationMatch{
			Types: nonEmpty(f["types"]), Actions: splitList(f.Get("actions")), ChangedKeys: splitList(f.Get("changed_keys")),
			StateTypes: nonEmpty(f["state_types"]), Teams: splitList(f.Get("teams")), Labels: splitList(f.Get("labels")),
			SLAActions: nonEmpty(f["sla_actions"]), ProjectStateChanged: f.Get("project_state_changed") != "",
			CycleCompleted: f.Get("cycle_completed") != "",
		},
	}
	if p, err := strconv.Atoi(f.Get("priority_at_least")); err == nil {
		rule.Match.PriorityAtLeast = &p
	}
	if v := strings.TrimSpace(f.Get("digest_minutes")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return rule, &apiError{Status: http.StatusUnprocessableEntity, Field: "digest_minutes", Message: "digest_minutes is a whole number of minutes"}
		}
		rule.DigestMinutes = n
	}
	return rule, nil
}

// handleNotifyRuleSave adds a rule from a built-in template or from the editor, or saves the rule being edited.
func (c *Console) handleNotifyRuleSave(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	if tpl := f.Get("from_template"); tpl != "" || f.Get("source") == "template" {
		body := map[string]any{"from_template": tpl, "name": strings.TrimSpace(f.Get("name")), "target_ids": orEmpty(nonEmpty(f["target_ids"])), "enabled": true}
		if _, err := c.call(r, s, http.MethodPost, "/notification-rules", body, nil); err != nil {
			c.notifyPage(w, r, s, statusOf(err), notifyData{Form: linsync.NotificationRule{Enabled: true}, FromTemplate: tpl, TemplateErr: asAPIError(err)})
			return
		}
		http.Redirect(w, r, Prefix+"/notifications?done=rule-saved", http.StatusSeeOther)
		return
	}
	rule, bad := ruleFromNotifyForm(f)
	d := notifyData{EditID: rule.ID, Form: rule}
	if bad != nil {
		d.RuleErr = bad
		c.notifyPage(w, r, s, http.StatusUnprocessableEntity, d)
		return
	}
	method, path := http.MethodPost, "/notification-rules"
	if rule.ID != "" {
		method, path = http.MethodPut, "/notification-rules/"+url.PathEscape(rule.ID)
	}
	if _, err := c.call(r, s, method, path, ruleBody(rule), nil); err != nil {
		d.RuleErr = asAPIError(err)
		c.notifyPage(w, r, s, statusOf(err), d)
		return
	}
	http.Redirect(w, r, Prefix+"/notifications?done=rule-saved", http.StatusSeeOther)
}

// ruleBody is a rule as the API takes it.
func ruleBody(rule linsync.NotificationRule) map[string]any {
	return map[string]any{"name": rule.Name, "enabled": rule.Enabled, "match": rule.Match, "target_ids": orEmpty(rule.TargetIDs),
		"template": rule.Template, "digest_minutes": rule.DigestMinutes, "notify_on_own_changes": rule.NotifyOnOwnChanges}
}

// handleNotifyRuleToggle enables or disables a rule: the rule as the API holds it, with only enabled changed.
func (c *Console) handleNotifyRuleToggle(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	fail := func(err error) {
		c.notifyPage(w, r, s, statusOf(err), notifyData{Form: linsync.NotificationRule{Enabled: true}, Errors: []string{errorText(err)}})
	}
	var one struct {
		Rule linsync.NotificationRule `json:"rule"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/notification-rules/"+url.PathEscape(id), nil, &one); err != nil {
		fail(err)
		return
	}
	one.Rule.Enabled = r.PostForm.Get("enabled") == "true"
	if _, err := c.call(r, s, http.MethodPut, "/notification-rules/"+url.PathEscape(id), ruleBody(one.Rule), nil); err != nil {
		fail(err)
		return
	}
	done := "rule-off"
	if one.Rule.Enabled {
		done = "rule-on"
	}
	http.Redirect(w, r, Prefix+"/notifications?done="+done, http.StatusSeeOther)
}

func (c *Console) handleNotifyRuleDelete(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.call(r, s, http.MethodDelete, "/notification-rules/"+url.PathEscape(r.PathValue("id")), nil, nil); err != nil {
		c.notifyPage(w, r, s, statusOf(err), notifyData{Form: linsync.NotificationRule{Enabled: true}, Errors: []string{errorText(err)}})
		return
	}
	http.Redirect(w, r, Prefix+"/notifications?done=rule-del", http.StatusSeeOther)
}

// handleNotifySimulate asks notification-rules:simulate which rules fire for a pasted delivery or a recorded one, and
// shows its answer: the rules and the messages as they would be sent. Nothing is sent.
func (c *Console) handleNotifySimulate(w http.ResponseWriter, r *http.Request, s *session) {
	raw, id := strings.TrimSpace(r.PostForm.Get("delivery")), strings.TrimSpace(r.PostForm.Get("delivery_id"))
	d := notifyData{Form: linsync.NotificationRule{Enabled: true}, SimJSON: raw, SimDeliveryID: id}
	body := map[string]any{}
	if raw != "" {
		if !json.Valid([]byte(raw)) {
			d.SimErr = &apiError{Status: http.StatusUnprocessableEntity, Field: "delivery", Message: "the delivery is not JSON"}
			c.notifyPage(w, r, s, http.StatusUnprocessableEntity, d)
			return
		}
		body["delivery"] = json.RawMessage(raw)
	}
	if id != "" {
		body["delivery_id"] = id
	}
	var sim notifySim
	res, err := c.call(r, s, http.MethodPost, "/notification-rules:simulate", body, &sim)
	if err != nil {
		d.SimErr = asAPIError(err)
		c.notifyPage(w, r, s, statusOf(err), d)
		return
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, res.Body, "", "  ") == nil {
		sim.Raw = pretty.String()
	}
	d.Sim = &sim
	c.notifyPage(w, r, s, http.StatusOK, d)
}

func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return &apiError{Status: http.StatusInternalServerError, Message: "internal error"}
}

// fieldBase is the form field an API error's field names: match.state_types[0] is state_types.
func fieldBase(field string) string {
	field = strings.TrimPrefix(field, "match.")
	if i := strings.IndexAny(field, "[."); i >= 0 {
		field = field[:i]
	}
	return field
}

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func orEmpty(vs []string) []string {
	if vs == nil {
		return []string{}
	}
	return vs
}

// splitList reads a comma-separated list.
func splitList(v string) []string { return nonEmpty(strings.Split(v, ",")) }

// describeMatch says in words what a rule matches.
func describeMatch(rule linsync.NotificationRule) string {
	m := rule.Match
	or := func(vs []string) string { return strings.Join(vs, " or ") }
	what := "any event"
	if len(m.Types) > 0 {
		what = or(m.Types)
	}
	if len(m.Actions) > 0 {
		what += " " + or(m.Actions)
	}
	parts := []string{what}
	if len(m.ChangedKeys) > 0 {
		parts = append(parts, "where "+or(m.ChangedKeys)+" changed")
	}
	if len(m.StateTypes) > 0 {
		parts = append(parts, "moving to a state of type "+or(m.StateTypes))
	}
	if len(m.Teams) > 0 {
		parts = append(parts, "in team "+or(m.Teams))
	}
	if len(m.Labels) > 0 {
		parts = append(parts, "labelled "+or(m.Labels))
	}
	if m.PriorityAtLeast != nil {
		if *m.PriorityAtLeast == 1 {
			parts = append(parts, "priority Urgent")
		} else {
			parts = append(parts, "priority "+priorityNames[*m.PriorityAtLeast]+" or more urgent")
		}
	}
	if len(m.SLAActions) > 0 {
		parts = append(parts, "SLA "+or(m.SLAActions))
	}
	if m.ProjectStateChanged {
		parts = append(parts, "project status changed")
	}
	if m.CycleCompleted {
		parts = append(parts, "cycle completed")
	}
	if rule.NotifyOnOwnChanges {
		parts = append(parts, "including linsync's own changes")
	}
	return strings.Join(parts, ", ")
}
