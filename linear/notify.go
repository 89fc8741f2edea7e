package linear

import (
	"encoding/json"
	"slices"

	"github.com/linsync/linsync"
)

// NotificationEvent is the delivery w as notification rules see it (linsync.MatchNotification) and templates
// render it. ownActor is the Linear user linsync writes as ("" when unknown): a change by it is marked Own, an echo
// of linsync's own write.
func NotificationEvent(w *Webhook, deliveryID, ownActor string) linsync.NotificationEvent {
	ev := linsync.NotificationEvent{DeliveryID: deliveryID, Type: w.Type, Action: w.Action, URL: w.URL,
		Changed: changedKeys(w.UpdatedFrom)}
	if a := w.Actor; a != nil {
		ev.ActorID, ev.Actor = a.ID, a.Name
		if ev.Actor == "" {
			ev.Actor = a.Email
		}
		ev.Own = ownActor != "" && a.ID == ownActor
	}
	switch {
	case w.Issue != nil:
		d := w.Issue
		iss := &linsync.NotificationIssue{ID: d.ID, Identifier: d.Identifier, Title: d.Title, URL: d.URL,
			TeamID: d.TeamID, Priority: int(d.Priority), PriorityLabel: d.PriorityLabel}
		if iss.URL == "" {
			iss.URL = w.URL
		}
		if s := d.State; s != nil {
			iss.State, iss.StateType = s.Name, s.Type
		}
		if t := d.Team; t != nil {
			iss.TeamKey = t.Key
			if iss.TeamID == "" {
				iss.TeamID = t.ID
			}
		}
		if u := d.Assignee; u != nil {
			iss.Assignee = u.Name
			if iss.Assignee == "" {
				iss.Assignee = u.Email
			}
		}
		for _, l := range d.Labels {
			iss.Labels = append(iss.Labels, l.Name)
		}
		ev.Issue = iss
	case w.Project != nil:
		d := w.Project
		p := &linsync.NotificationProject{ID: d.ID, Name: d.Name, URL: d.URL, State: d.State, TeamIDs: d.TeamIDs}
		if d.Status != nil {
			p.State = d.Status.Name
		}
		p.StateChanged = w.Action == "update" && (slices.Contains(ev.Changed, "statusId") || slices.Contains(ev.Changed, "state"))
		ev.Project = p
	case w.ProjectUpdate != nil:
		d := w.ProjectUpdate
		u := &linsync.NotificationProjectUpdate{ID: d.ID, Body: d.Body, ProjectID: d.ProjectID, Health: d.Health, URL: d.URL}
		if d.Project != nil {
			u.ProjectName = d.Project.Name
			if u.URL == "" {
				u.URL = d.Project.URL
			}
		}
		if u.URL == "" {
			u.URL = w.URL
		}
		if d.User != nil {
			u.Author = d.User.Name
		}
		ev.ProjectUpdate = u
	case w.Cycle != nil:
		d := w.Cycle
		c := &linsync.NotificationCycle{ID: d.ID, Number: int(d.Number), TeamID: d.TeamID}
		if d.Name != nil {
			c.Name = *d.Name
		}
		// Completed once: the update that set completedAt (or, without updatedFrom, any update carrying it).
		c.Completed = d.CompletedAt != nil && w.Action == "update" &&
			(len(w.UpdatedFrom) == 0 || slices.Contains(ev.Changed, "completedAt"))
		ev.Cycle = c
	}
	return ev
}

// changedKeys are the keys of updatedFrom, sorted, without updatedAt (which every update changes).
func changedKeys(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var keys []string
	for k := range m {
		if k != "updatedAt" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
