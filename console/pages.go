package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/linsync/linsync"
)

// ---- routing rules and the simulator ----

type rulesAnswer struct {
	Rules   []linsync.RoutingRule `json:"rules"`
	Version int64                 `json:"version"`
}

type routingData struct {
	Rules        []linsync.RoutingRule
	Teams        []team
	TeamNames    map[string]string
	Edit         int // index of the rule in the form; -1 adds one
	Form         linsync.RoutingRule
	FailureTypes []string
	EventTypes   []string
	Samples      []sample
	SampleJSON   string
	Sim          *simulation
	SimError     string
}

type simulation struct {
	Decision linsync.Decision     `json:"decision"`
	Rule     *linsync.RoutingRule `json:"rule"`
}

type sample struct {
	Name string
	JSON string
}

// samples are the events the simulator offers to start from.
var samples = []sample{
	{"link.broken, paid, 404", `{"event":"link.broken","link_id":"lnk_1","short_url":"https://sho.rt/summer","destination_url":"https://shop.example.com/sale","failure_type":"http_4xx","tags":["paid"]}`},
	{"link.broken, TLS expired", `{"event":"link.broken","link_id":"lnk_2","short_url":"https://sho.rt/docs","destination_url":"https://docs.example.com/","failure_type":"tls_expired","tags":["organic"]}`},
	{"link.click_threshold spike", `{"event":"link.click_threshold","link_id":"lnk_9","short_url":"https://sho.rt/launch","band":"spike","current_hour_clicks":900,"baseline_hourly_clicks":40}`},
	{"domain.takeover_detected", `{"event":"domain.takeover_detected","domain":"promo.example.com","detail":"CNAME points at an unclaimed bucket"}`},
}

func (c *Console) routingPage(w http.ResponseWriter, r *http.Request, s *session, status int, d routingData, errMsg string) {
	p := c.newPage(r, s, "routing", "Routing rules")
	p.Error = errMsg
	var rules rulesAnswer
	if _, err := c.call(r, s, http.MethodGet, "/routing-rules", nil, &rules); err != nil && p.Error == "" {
		p.Error = errorText(err)
	}
	d.Rules = rules.Rules
	var teams struct {
		Teams []team `json:"teams"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/integrations/linear/teams", nil, &teams); err == nil {
		d.Teams = teams.Teams
	}
	d.TeamNames = map[string]string{}
	for _, t := range d.Teams {
		d.TeamNames[t.ID] = t.Key + " · " + t.Name
	}
	d.FailureTypes, d.EventTypes, d.Samples = linsync.FailureTypes, linsync.EventTypes, samples
	if d.SampleJSON == "" {
		d.SampleJSON = samples[0].JSON
	}
	if d.Edit >= 0 && d.Edit < len(d.Rules) && d.Form.Name == "" && d.Form.TagGlob == "" && !d.Form.Default {
		d.Form = d.Rules[d.Edit]
	}
	p.Data = d
	c.render(w, status, "routing", p)
}

func (c *Console) handleRouting(w http.ResponseWriter, r *http.Request, s *session) {
	edit := -1
	if v, err := strconv.Atoi(r.URL.Query().Get("edit")); err == nil {
		edit = v
	}
	d := routingData{Edit: edit}
	if i, err := strconv.Atoi(r.URL.Query().Get("sample")); err == nil && i >= 0 && i < len(samples) {
		d.SampleJSON = samples[i].JSON
	}
	c.routingPage(w, r, s, http.StatusOK, d, "")
}

// ruleFromForm reads one rule from the editor.
func ruleFromForm(f url.Values) linsync.RoutingRule {
	rule := linsync.RoutingRule{Name: strings.TrimSpace(f.Get("name")), TagGlob: strings.TrimSpace(f.Get("tag_glob")),
		FailureType: f.Get("failure_type"), TeamID: f.Get("team_id"), Labels: splitLabels(f.Get("labels")),
		Default: f.Get("default") == "on", FileLinkCreated: f.Get("file_link_created") == "on"}
	for _, t := range f["event_types"] {
		if t != "" {
			rule.EventTypes = append(rule.EventTypes, t)
		}
	}
	if len(rule.Labels) == 0 {
		rule.Labels = nil
	}
	if p, err := strconv.Atoi(f.Get("priority")); err == nil {
		rule.Priority = &p
	}
	return rule
}

// saveRules replaces the workspace's rules through the API, which checks every rule before it saves any.
func (c *Console) saveRules(w http.ResponseWriter, r *http.Request, s *session, rules []linsync.RoutingRule, d routingData) {
	if rules == nil {
		rules = []linsync.RoutingRule{}
	}
	if _, err := c.call(r, s, http.MethodPut, "/routing-rules", map[string]any{"rules": rules}, nil); err != nil {
		c.routingPage(w, r, s, statusOf(err), d, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"/routing?done=rules", http.StatusSeeOther)
}

func (c *Console) currentRules(r *http.Request, s *session) ([]linsync.RoutingRule, error) {
	var rules rulesAnswer
	_, err := c.call(r, s, http.MethodGet, "/routing-rules", nil, &rules)
	return rules.Rules, err
}

// handleRuleSave adds a rule (before the default rule, which stays last) or replaces the one being edited.
func (c *Console) handleRuleSave(w http.ResponseWriter, r *http.Request, s *session) {
	rules, err := c.currentRules(r, s)
	if err != nil {
		c.routingPage(w, r, s, statusOf(err), routingData{Edit: -1}, errorText(err))
		return
	}
	rule := ruleFromForm(r.PostForm)
	idx, ierr := strconv.Atoi(r.PostForm.Get("index"))
	d := routingData{Edit: -1, Form: rule}
	switch {
	case ierr == nil && idx >= 0 && idx < len(rules):
		rules[idx] = rule
		d.Edit = idx
	case !rule.Default && len(rules) > 0 && rules[len(rules)-1].Default:
		rules = append(rules[:len(rules)-1], rule, rules[len(rules)-1])
	default:
		rules = append(rules, rule)
	}
	c.saveRules(w, r, s, rules, d)
}

func (c *Console) handleRuleMove(w http.ResponseWriter, r *http.Request, s *session) {
	rules, err := c.currentRules(r, s)
	if err != nil {
		c.routingPage(w, r, s, statusOf(err), routingData{Edit: -1}, errorText(err))
		return
	}
	i, err := strconv.Atoi(r.PostForm.Get("index"))
	j := i - 1
	if r.PostForm.Get("direction") == "down" {
		j = i + 1
	}
	if err != nil || i < 0 || i >= len(rules) || j < 0 || j >= len(rules) {
		c.routingPage(w, r, s, http.StatusUnprocessableEntity, routingData{Edit: -1}, "that rule cannot move that way")
		return
	}
	rules[i], rules[j] = rules[j], rules[i]
	c.saveRules(w, r, s, rules, routingData{Edit: -1})
}

func (c *Console) handleRuleDelete(w http.ResponseWriter, r *http.Request, s *session) {
	rules, err := c.currentRules(r, s)
	if err != nil {
		c.routingPage(w, r, s, statusOf(err), routingData{Edit: -1}, errorText(err))
		return
	}
	i, err := strconv.Atoi(r.PostForm.Get("index"))
	if err != nil || i < 0 || i >= len(rules) {
		c.routingPage(w, r, s, http.StatusUnprocessableEntity, routingData{Edit: -1}, "no such rule")
		return
	}
	c.saveRules(w, r, s, append(rules[:i], rules[i+1:]...), routingData{Edit: -1})
}

// handleSimulate routes a sample event with routing:simulate, the function filing itself uses; nothing is filed.
func (c *Console) handleSimulate(w http.ResponseWriter, r *http.Request, s *session) {
	raw := strings.TrimSpace(r.PostForm.Get("event"))
	d := routingData{Edit: -1, SampleJSON: raw}
	var ev json.RawMessage
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		d.SimError = "the sample event is not JSON: " + err.Error()
		c.routingPage(w, r, s, http.StatusUnprocessableEntity, d, "")
		return
	}
	var sim simulation
	if _, err := c.call(r, s, http.MethodPost, "/routing:simulate", ev, &sim); err != nil {
		d.SimError = errorText(err)
		c.routingPage(w, r, s, statusOf(err), d, "")
		return
	}
	d.Sim = &sim
	c.routingPage(w, r, s, http.StatusOK, d, "")
}

// ---- failed events ----

type failedData struct {
	Events     []linsync.DeadLetter
	Kind       string
	ErrorClass string
	Status     string
	Next       string
	// One is the failed event being looked at, with the dry run of its replay.
	One    *linsync.DeadLetter
	Plan   []replayPlan
	Result *replayResult
	// Bulk is a bulk replay: its dry run, or its progress.
	BulkPlan     []replayPlan
	BulkRequest  string
	Progress     *replayProgress
	TemporalUI   string
	PlanMessage  string
	BulkFiltered bool
}

type replayPlan struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	WorkflowID  string `json:"workflow_id"`
	WouldReplay bool   `json:"would_replay"`
	Reason      string `json:"reason"`
	Writes      []struct {
		Field  string `json:"field"`
		Before any    `json:"before"`
		After  any    `json:"after"`
		Note   string `json:"note"`
	} `json:"writes"`
	SinceFailure []struct {
		Field string `json:"field"`
		Now   any    `json:"now"`
		By    string `json:"by"`
	} `json:"since_failure"`
}

type replayResult struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome"`
	RunID   string `json:"run_id"`
	Error   string `json:"error"`
}

type replayProgress struct {
	Finished bool           `json:"finished"`
	Total    int            `json:"total"`
	Done     int            `json:"done"`
	Counts   map[string]int `json:"counts"`
	Results  []replayResult `json:"results"`
}

// Percent is the share of the bulk replay done.
func (p *replayProgress) Percent() int {
	if p.Total == 0 {
		if p.Finished {
			return 100
		}
		return 0
	}
	return p.Done * 100 / p.Total
}

func (c *Console) listFailed(r *http.Request, s *session, d *failedData) error {
	q := url.Values{}
	for k, v := range map[string]string{"kind": d.Kind, "error_class": d.ErrorClass, "status": d.Status, "cursor": r.URL.Query().Get("cursor")} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		FailedEvents []linsync.DeadLetter `json:"failed_events"`
		NextCursor   *string              `json:"next_cursor"`
	}
	path := "/failed-events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	_, err := c.call(r, s, http.MethodGet, path, nil, &out)
	d.Events = out.FailedEvents
	if out.NextCursor != nil {
		d.Next = *out.NextCursor
	}
	return err
}

func (c *Console) failedPage(w http.ResponseWriter, r *http.Request, s *session, status int, d failedData, errMsg string) {
	p := c.newPage(r, s, "failed", "Failed events")
	p.Error = errMsg
	if err := c.listFailed(r, s, &d); err != nil && p.Error == "" {
		p.Error = errorText(err)
	}
	d.TemporalUI = c.opts.TemporalUIURL
	p.Data = d
	c.render(w, status, "failed", p)
}

func filterOf(v url.Values) failedData {
	return failedData{Kind: v.Get("kind"), ErrorClass: v.Get("error_class"), Status: v.Get("status")}
}

func (c *Console) handleFailed(w http.ResponseWriter, r *http.Request, s *session) {
	c.failedPage(w, r, s, http.StatusOK, filterOf(r.URL.Query()), "")
}

// handleFailedOne shows one failed event with the dry run of its replay: what the replay would write, field by field,
// and what changed since it failed. The replay button comes after the diff.
func (c *Console) handleFailedOne(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	d := filterOf(r.URL.Query())
	var one linsync.DeadLetter
	if _, err := c.call(r, s, http.MethodGet, "/failed-events/"+url.PathEscape(id), nil, &one); err != nil {
		c.failedPage(w, r, s, statusOf(err), d, errorText(err))
		return
	}
	d.One = &one
	var dry struct {
		Plan []replayPlan `json:"plan"`
	}
	if _, err := c.call(r, s, http.MethodPost, "/failed-events/"+url.PathEscape(id)+"/replay?dry_run=true", nil, &dry); err != nil {
		d.PlanMessage = errorText(err)
	}
	d.Plan = dry.Plan
	c.failedPage(w, r, s, http.StatusOK, d, "")
}

func (c *Console) handleReplayOne(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	d := failedData{}
	var out struct {
		Result replayResult `json:"result"`
	}
	if _, err := c.call(r, s, http.MethodPost, "/failed-events/"+url.PathEscape(id)+"/replay", nil, &out); err != nil {
		c.failedPage(w, r, s, statusOf(err), d, errorText(err))
		return
	}
	var one linsync.DeadLetter
	if _, err := c.call(r, s, http.MethodGet, "/failed-events/"+url.PathEscape(id), nil, &one); err == nil {
		d.One = &one
	}
	d.Result = &out.Result
	c.failedPage(w, r, s, http.StatusOK, d, "")
}

// handleBulkReplay previews (dry run) or starts a replay of every open failed event matching the filter.
func (c *Console) handleBulkReplay(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	d := failedData{Kind: f.Get("kind"), ErrorClass: f.Get("error_class"), BulkFiltered: true}
	body := map[string]any{"kind": d.Kind, "error_class": d.ErrorClass}
	if f.Get("action") == "preview" {
		var dry struct {
			Plan    []replayPlan `json:"plan"`
			Message string       `json:"message"`
		}
		if _, err := c.call(r, s, http.MethodPost, "/failed-events:replay?dry_run=true", body, &dry); err != nil {
			c.failedPage(w, r, s, statusOf(err), d, errorText(err))
			return
		}
		d.BulkPlan, d.PlanMessage = dry.Plan, dry.Message
		if d.BulkPlan == nil {
			d.BulkPlan = []replayPlan{}
		}
		c.failedPage(w, r, s, http.StatusOK, d, "")
		return
	}
	var out struct {
		RequestID string `json:"request_id"`
	}
	if _, err := c.call(r, s, http.MethodPost, "/failed-events:replay", body, &out); err != nil {
		c.failedPage(w, r, s, statusOf(err), d, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"/failed/bulk/"+url.PathEscape(out.RequestID), http.StatusSeeOther)
}

// handleBulkProgress shows a bulk replay's progress; the page polls it (htmx) until the replay is finished.
func (c *Console) handleBulkProgress(w http.ResponseWriter, r *http.Request, s *session) {
	req := r.PathValue("request")
	d := failedData{BulkRequest: req}
	var p replayProgress
	if _, err := c.call(r, s, http.MethodGet, "/failed-events:replay/"+url.PathEscape(req), nil, &p); err != nil {
		c.failedPage(w, r, s, statusOf(err), d, errorText(err))
		return
	}
	d.Progress = &p
	c.failedPage(w, r, s, http.StatusOK, d, "")
}

// ---- sync status, questions, filed issues ----

type syncData struct {
	Items     []syncItem
	Inbox     map[string]any
	Questions []question
	Filed     []linsync.FiledIssue
	Errors    []string
}

type syncItem struct {
	Kind       string `json:"kind"`
	ID         string `json:"id"`
	ExternalID string `json:"external_id"`
	EventKind  string `json:"event_kind"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Attempts   int    `json:"attempts"`
	NextAction string `json:"next_action"`
	UIURL      string `json:"ui_url"`
}

type question struct {
	ID         string  `json:"id"`
	ExternalID *string `json:"external_id"`
	Title      string  `json:"title"`
	Status     string  `json:"status"`
	Linear     *struct {
		Identifier string `json:"identifier"`
		URL        string `json:"url"`
	} `json:"linear"`
	Sync struct {
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"sync"`
}

func (c *Console) handleSync(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(r, s, "sync", "Sync status")
	var d syncData
	var st struct {
		Items []syncItem     `json:"items"`
		Inbox map[string]any `json:"inbox"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/sync-status", nil, &st); err != nil {
		d.Errors = append(d.Errors, "sync status: "+errorText(err))
	}
	d.Items, d.Inbox = st.Items, st.Inbox
	var qs struct {
		Questions []question `json:"questions"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/questions?limit=50", nil, &qs); err != nil {
		d.Errors = append(d.Errors, "questions: "+errorText(err))
	}
	d.Questions = qs.Questions
	var fi struct {
		Filed []linsync.FiledIssue `json:"filed_issues"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/filed-issues?limit=50", nil, &fi); err != nil {
		d.Errors = append(d.Errors, "filed issues: "+errorText(err))
	}
	d.Filed = fi.Filed
	p.Data = d
	c.render(w, http.StatusOK, "sync", p)
}

// ---- gateway: approvals and audit ----

type gatewayData struct {
	Approvals []approval
	Audit     []linsync.GatewayAuditEntry
	Errors    []string
}

// approval is a held request with the readable summary of what it does.
type approval struct {
	linsync.GatewayApproval
	Summary string `json:"summary"`
}

func (c *Console) gatewayPage(w http.ResponseWriter, r *http.Request, s *session, status int, errMsg string) {
	p := c.newPage(r, s, "gateway", "Agent gateway")
	p.Error = errMsg
	var d gatewayData
	var ap struct {
		Approvals []linsync.GatewayApproval `json:"approvals"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/gateway/approvals?status=pending", nil, &ap); err != nil {
		d.Errors = append(d.Errors, "approvals: "+errorText(err))
	}
	// Each held request as its approver must see it: what it does, argument by argument, besides its hash.
	for _, a := range ap.Approvals {
		one := approval{GatewayApproval: a}
		if _, err := c.call(r, s, http.MethodGet, "/gateway/approvals/"+url.PathEscape(a.ID), nil, &one); err != nil {
			one.Summary = "(its summary could not be read: " + errorText(err) + ")"
		}
		d.Approvals = append(d.Approvals, one)
	}
	var au struct {
		Entries []linsync.GatewayAuditEntry `json:"entries"`
	}
	if _, err := c.call(r, s, http.MethodGet, "/gateway/audit?limit=50", nil, &au); err != nil {
		d.Errors = append(d.Errors, "audit: "+errorText(err))
	}
	d.Audit = au.Entries
	p.Data = d
	c.render(w, status, "gateway", p)
}

func (c *Console) handleGateway(w http.ResponseWriter, r *http.Request, s *session) {
	c.gatewayPage(w, r, s, http.StatusOK, "")
}

// handleDecide approves (by the hash of the request the admin saw) or denies a held request.
func (c *Console) handleDecide(w http.ResponseWriter, r *http.Request, s *session) {
	id, decision := r.PathValue("id"), r.PathValue("decision")
	var body map[string]any
	switch decision {
	case "approve":
		body = map[string]any{"request_hash": r.PostForm.Get("request_hash")}
	case "deny":
		body = map[string]any{"reason": strings.TrimSpace(r.PostForm.Get("reason"))}
	default:
		c.gatewayPage(w, r, s, http.StatusNotFound, "no such decision")
		return
	}
	if _, err := c.call(r, s, http.MethodPost, "/gateway/approvals/"+url.PathEscape(id)+"/"+decision, body, nil); err != nil {
		c.gatewayPage(w, r, s, statusOf(err), errorText(err))
		return
	}
	done := "approved"
	if decision == "deny" {
		done = "denied"
	}
	http.Redirect(w, r, Prefix+"/gateway?done="+done, http.StatusSeeOther)
}
