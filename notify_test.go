package linsync

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func issueEvent(action string, changed []string, stateType string, prio int) NotificationEvent {
	return NotificationEvent{DeliveryID: "d-1", Type: "Issue", Action: action, Changed: changed, Actor: "Alice",
		Issue: &NotificationIssue{ID: "i", Identifier: "ENG-7", Title: "Fix <the> & login", URL: "https://linear.app/a/issue/ENG-7",
			State: "Done", StateType: stateType, TeamID: "team-1", TeamKey: "ENG", Priority: prio, Labels: []string{"Bug"}}}
}

func TestMatchNotification(t *testing.T) {
	t.Parallel()
	tmpl := func(name string) NotificationMatch {
		tm, ok := FindNotificationTemplate(name)
		require.True(t, ok, name)
		return tm.Match
	}
	completed := issueEvent("update", []string{"stateId"}, "completed", 3)
	own := completed
	own.Own = true
	cases := []struct {
		name  string
		match NotificationMatch
		ev    NotificationEvent
		own   bool
		want  bool
	}{
		{"issue completed", tmpl("issue-completed"), completed, false, true},
		{"state changed, not completed", tmpl("issue-completed"), issueEvent("update", []string{"stateId"}, "started", 3), false, false},
		{"completed issue edited, state unchanged", tmpl("issue-completed"), issueEvent("update", []string{"title"}, "completed", 3), false, false},
		{"linsync's own write is an echo", tmpl("issue-completed"), own, false, false},
		{"own write, rule wants them", tmpl("issue-completed"), own, true, true},
		{"assigned", tmpl("issue-assigned"), issueEvent("update", []string{"assigneeId"}, "started", 0), false, true},
		{"urgent created", tmpl("urgent-issue-created"), issueEvent("create", nil, "triage", 1), false, true},
		{"high is not urgent", tmpl("urgent-issue-created"), issueEvent("create", nil, "triage", 2), false, false},
		{"no priority is not urgent", tmpl("urgent-issue-created"), issueEvent("create", nil, "triage", 0), false, false},
		{"priority at or above high", NotificationMatch{PriorityAtLeast: intp(2)}, issueEvent("create", nil, "triage", 1), false, true},
		{"SLA breached", tmpl("sla-at-risk"), NotificationEvent{Type: "IssueSLA", Action: "breached", Issue: &NotificationIssue{}}, false, true},
		{"SLA set is not at risk", tmpl("sla-at-risk"), NotificationEvent{Type: "IssueSLA", Action: "set", Issue: &NotificationIssue{}}, false, false},
		{"SLA actions need IssueSLA", NotificationMatch{SLAActions: []string{"breached"}}, NotificationEvent{Type: "Issue", Action: "breached"}, false, false},
		{"project state changed", tmpl("project-state-changed"), NotificationEvent{Type: "Project", Action: "update", Project: &NotificationProject{StateChanged: true}}, false, true},
		{"project renamed", tmpl("project-state-changed"), NotificationEvent{Type: "Project", Action: "update", Project: &NotificationProject{}}, false, false},
		{"cycle completed", tmpl("cycle-completed"), NotificationEvent{Type: "Cycle", Action: "update", Cycle: &NotificationCycle{Completed: true}}, false, true},
		{"cycle updated", tmpl("cycle-completed"), NotificationEvent{Type: "Cycle", Action: "update", Cycle: &NotificationCycle{}}, false, false},
		{"project update posted", tmpl("project-update-posted"), NotificationEvent{Type: "ProjectUpdate", Action: "create", ProjectUpdate: &NotificationProjectUpdate{}}, false, true},
		{"team by key, any case", NotificationMatch{Teams: []string{"eng"}}, completed, false, true},
		{"team by id", NotificationMatch{Teams: []string{"team-1"}}, completed, false, true},
		{"other team", NotificationMatch{Teams: []string{"OPS"}}, completed, false, false},
		{"label, any case", NotificationMatch{Labels: []string{"bug"}}, completed, false, true},
		{"missing label", NotificationMatch{Labels: []string{"feature"}}, completed, false, false},
		{"changed keys, any of", NotificationMatch{ChangedKeys: []string{"priority", "stateId"}}, completed, false, true},
		{"no criteria never fires", NotificationMatch{}, completed, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NotificationRule{Enabled: true, Match: tc.match, NotifyOnOwnChanges: tc.own}
			require.Equal(t, tc.want, MatchNotification(r, tc.ev))
		})
	}
	require.False(t, MatchNotification(NotificationRule{Match: tmpl("issue-completed")}, completed), "a disabled rule never fires")
}

func TestRenderNotification(t *testing.T) {
	t.Parallel()
	ev := issueEvent("update", []string{"stateId", "assigneeId"}, "completed", 1)
	ev.Issue.Assignee, ev.Issue.PriorityLabel = "Bob", "Urgent"
	rule := NotificationRule{ID: "r-1", Name: "done"}

	slack, err := RenderNotification(NotifySlack, rule, ev)
	require.NoError(t, err)
	require.Equal(t, "<https://linear.app/a/issue/ENG-7|ENG-7> *Fix &lt;the&gt; &amp; login* · Done · assignee Bob · Urgent · by Alice · changed state, assignee", slack.Text)
	require.JSONEq(t, `{"text":`+mustJSON(t, slack.Text)+`}`, string(slack.Body))

	hook, err := RenderNotification(NotifyWebhook, rule, ev)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(hook.Text, "ENG-7 (https://linear.app/a/issue/ENG-7) *Fix <the> & login*"), hook.Text)
	var body struct {
		Type, ID string
		Rule     map[string]string
		Event    NotificationEvent
	}
	require.NoError(t, json.Unmarshal(hook.Body, &body))
	require.Equal(t, "linsync.notification", body.Type)
	require.Equal(t, "d-1", body.ID)
	require.Equal(t, "done", body.Rule["name"])
	require.Equal(t, "Fix <the> & login", body.Event.Issue.Title, "the webhook's event carries Linear's values")

	custom := rule
	custom.Template = `{{.Issue.Identifier}} is {{.Issue.State}} ({{link "javascript:alert(1)" "x"}})`
	got, err := RenderNotification(NotifySlack, custom, ev)
	require.NoError(t, err)
	require.Equal(t, "ENG-7 is Done (x)", got.Text, "a link that is not http(s) is left out")
}

func TestRenderNotificationDigest(t *testing.T) {
	t.Parallel()
	var evs []NotificationEvent
	for range 60 {
		evs = append(evs, issueEvent("update", []string{"stateId"}, "completed", 0))
	}
	msg, err := RenderNotificationDigest(NotifySlack, NotificationRule{Name: "done"}, "w", evs)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(msg.Text, "60 matches of done:"))
	require.Contains(t, msg.Text, "… and 10 more")
	require.LessOrEqual(t, len(msg.Text), MaxNotificationText)
}

func TestCheckNotificationRule(t *testing.T) {
	t.Parallel()
	ok := NotificationRule{Name: "r", Match: NotificationMatch{Types: []string{"Issue"}}, TargetIDs: []string{"3f8c1e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"}}
	require.NoError(t, CheckNotificationRule(ok))
	cases := map[string]func(r *NotificationRule){
		"name":                    func(r *NotificationRule) { r.Name = " " },
		"match":                   func(r *NotificationRule) { r.Match = NotificationMatch{} },
		"target_ids":              func(r *NotificationRule) { r.TargetIDs = nil },
		"target_ids[0]":           func(r *NotificationRule) { r.TargetIDs = []string{"x"} },
		"digest_minutes":          func(r *NotificationRule) { r.DigestMinutes = 2000 },
		"template":                func(r *NotificationRule) { r.Template = "{{.Issue.Missing}}" },
		"match.state_types[0]":    func(r *NotificationRule) { r.Match.StateTypes = []string{"finished"} },
		"match.priority_at_least": func(r *NotificationRule) { r.Match.PriorityAtLeast = intp(0) },
		"match.sla_actions[0]":    func(r *NotificationRule) { r.Match.SLAActions = []string{"late"} },
	}
	for field, bend := range cases {
		r := ok
		r.Match.Types = append([]string(nil), ok.Match.Types...)
		bend(&r)
		err := CheckNotificationRule(r)
		var e *Error
		require.ErrorAs(t, err, &e, field)
		require.Equal(t, field, e.Field)
	}
}

func TestNotificationMessageIDIsStable(t *testing.T) {
	t.Parallel()
	a := NotificationMessageID("d", "r", "t")
	require.Equal(t, a, NotificationMessageID("d", "r", "t"))
	require.NotEqual(t, a, NotificationMessageID("d", "r", "t2"))
	require.True(t, strings.HasPrefix(a, "msg_"))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
