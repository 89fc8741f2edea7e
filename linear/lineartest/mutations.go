package lineartest

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// event is one change Linear would announce by webhook.
type event struct {
	action, typ string
	data        map[string]any
	updatedFrom map[string]any
	actor       *user
	url         string
	teamID      string
	at          time.Time
}

// mutation resolves the root Mutation fields linsync uses; the actor of every change is the caller.
func (s *Server) mutation(actor *user) obj {
	input := func(args map[string]any) map[string]any { m, _ := args["input"].(map[string]any); return m }
	return obj{
		"__typename": "Mutation",
		"issueCreate": lazy(func(args map[string]any) (any, error) {
			is, err := s.createIssue(actor, input(args))
			if err != nil {
				return nil, err
			}
			return s.payload("IssuePayload", "issue", s.issueObj(is)), nil
		}),
		"issueUpdate": lazy(func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			is := s.issueByIDOrIdentifier(id)
			if is == nil {
				return nil, notFound("Issue")
			}
			if err := s.updateIssue(actor, is, input(args)); err != nil {
				return nil, err
			}
			return s.payload("IssuePayload", "issue", s.issueObj(is)), nil
		}),
		"issueDelete": lazy(func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			is := s.issueByIDOrIdentifier(id)
			if is == nil {
				return nil, notFound("Issue")
			}
			s.deleteIssue(actor, is)
			return s.payload("DeletePayload", "entityId", is.ID), nil
		}),
		"commentCreate": lazy(func(args map[string]any) (any, error) {
			c, err := s.createComment(actor, input(args))
			if err != nil {
				return nil, err
			}
			return s.payload("CommentPayload", "comment", s.commentObj(c)), nil
		}),
		"commentUpdate": lazy(func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			c := s.comments[id]
			if c == nil {
				return nil, notFound("Comment")
			}
			body, _ := str(input(args), "body")
			if err := s.editComment(actor, c, body); err != nil {
				return nil, err
			}
			return s.payload("CommentPayload", "comment", s.commentObj(c)), nil
		}),
		"commentDelete": lazy(func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			c := s.comments[id]
			if c == nil || c.ArchivedAt != nil {
				return nil, notFound("Comment")
			}
			s.deleteComment(actor, c)
			return s.payload("DeletePayload", "entityId", id), nil
		}),
		"issueLabelCreate": lazy(func(args map[string]any) (any, error) {
			l, err := s.createLabel(actor, input(args))
			if err != nil {
				return nil, err
			}
			return s.payload("IssueLabelPayload", "issueLabel", s.labelObj(l)), nil
		}),
		"webhookCreate": lazy(func(args map[string]any) (any, error) {
			wh, err := s.createWebhook(actor, input(args))
			if err != nil {
				return nil, err
			}
			return s.payload("WebhookPayload", "webhook", s.webhookObj(wh)), nil
		}),
		"webhookUpdate": lazy(func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			wh := s.webhooks[id]
			if wh == nil {
				return nil, notFound("Webhook")
			}
			s.updateWebhook(wh, input(args))
			return s.payload("WebhookPayload", "webhook", s.webhookObj(wh)), nil
		}),
		"webhookDelete": lazy(func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			if s.webhooks[id] == nil {
				return nil, notFound("Webhook")
			}
			delete(s.webhooks, id)
			return s.payload("DeletePayload", "entityId", id), nil
		}),
	}
}

// payload wraps a mutation result the way Linear does. Callers hold s.mu.
func (s *Server) payload(typename, field string, v any) obj {
	s.lastSyncID++
	return obj{"__typename": typename, "success": true, "lastSyncId": s.lastSyncID, field: v}
}

// chooseID honours a client-chosen id and refuses one already taken, the way Linear makes creates idempotent.
func chooseID(in map[string]any, entity string, taken func(string) bool) (string, error) {
	id, _ := in["id"].(string)
	if id == "" {
		return uuid.NewString(), nil
	}
	if _, err := uuid.Parse(id); err != nil {
		return "", errorf("Argument Validation Error: id must be a UUID")
	}
	if taken(id) {
		return "", conflict(entity, id)
	}
	return id, nil
}

func str(in map[string]any, k string) (string, bool) { v, ok := in[k].(string); return v, ok }

func optStr(in map[string]any, k string) *string {
	if v, ok := in[k].(string); ok {
		return &v
	}
	return nil
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func intOf(v any) (int, bool) {
	f, ok := num(v)
	return int(f), ok
}

func (s *Server) createIssue(actor *user, in map[string]any) (*issue, error) {
	teamID, _ := str(in, "teamId")
	t := s.teamByIDOrKey(teamID)
	if t == nil {
		return nil, notFound("Team")
	}
	id, err := chooseID(in, "Issue", func(id string) bool { return s.issues[id] != nil })
	if err != nil {
		return nil, err
	}
	title, _ := str(in, "title")
	if title == "" {
		return nil, errorf("Argument Validation Error: title should not be empty")
	}
	now := s.now()
	t.issueCount++
	is := &issue{ID: id, TeamID: t.ID, Number: t.issueCount, Identifier: t.Key + "-" + itoa(t.issueCount),
		Title: title, StateID: t.DefaultStateID, CreatorID: actor.ID, CreatedAt: now, UpdatedAt: now,
		LabelIDs: []string{}, SubscriberIDs: []string{actor.ID}}
	if err := s.applyIssueInput(is, in, nil); err != nil {
		t.issueCount--
		return nil, err
	}
	s.issues[id] = is
	s.emit(event{action: "create", typ: "Issue", data: s.issueData(is), actor: actor, url: s.issueURL(is), teamID: is.TeamID, at: now})
	return is, nil
}

// applyIssueInput applies the fields present in an IssueCreateInput or IssueUpdateInput; null clears. It records
// previous values in from (when not nil), as Linear's updatedFrom does.
func (s *Server) applyIssueInput(is *issue, in map[string]any, from map[string]any) error {
	old := s.issueData(is)
	note := func(keys ...string) {
		if from != nil {
			for _, k := range keys {
				from[k] = old[k]
			}
		}
	}
	for k, v := range in {
		switch k {
		case "title":
			t, _ := v.(string)
			if t == "" {
				return errorf("Argument Validation Error: title should not be empty")
			}
			note("title")
			is.Title = t
		case "description":
			note("description", "descriptionData")
			is.Description = optStr(in, k)
		case "assigneeId":
			id := optStr(in, k)
			if id != nil && s.users[*id] == nil {
				return notFound("User")
			}
			note("assigneeId")
			is.AssigneeID = id
		case "stateId":
			id, _ := v.(string)
			st := s.states[id]
			if st == nil || st.TeamID != is.TeamID {
				return notFound("WorkflowState")
			}
			note("stateId")
			s.moveToState(is, st)
		case "priority":
			p, ok := intOf(v)
			if v == nil {
				p, ok = 0, true
			}
			if !ok || p < 0 || p > 4 {
				return errorf("Argument Validation Error: priority must be between 0 and 4")
			}
			note("priority", "priorityLabel")
			is.Priority = p
		case "labelIds", "addedLabelIds", "removedLabelIds":
			ids := strs(v)
			for _, id := range ids {
				if s.labels[id] == nil {
					return notFound("IssueLabel")
				}
			}
			note("labelIds")
			switch k {
			case "labelIds":
				is.LabelIDs = ids
			case "addedLabelIds":
				for _, id := range ids {
					if !slices.Contains(is.LabelIDs, id) {
						is.LabelIDs = append(is.LabelIDs, id)
					}
				}
			default:
				is.LabelIDs = slices.DeleteFunc(is.LabelIDs, func(id string) bool { return slices.Contains(ids, id) })
			}
		case "dueDate":
			note("dueDate")
			is.DueDate = optStr(in, k)
		case "parentId":
			note("parentId")
			is.ParentID = optStr(in, k)
		case "estimate":
			note("estimate")
			if e, ok := intOf(v); ok {
				is.Estimate = &e
			} else {
				is.Estimate = nil
			}
		case "subscriberIds":
			note("subscriberIds")
			is.SubscriberIDs = strs(v)
		case "trashed":
			note("trashed")
			if b, ok := v.(bool); ok {
				is.Trashed = &b
			} else {
				is.Trashed = nil
			}
		}
	}
	return nil
}

// moveToState sets the state and the timestamps Linear keeps for state types.
func (s *Server) moveToState(is *issue, st *workflowState) {
	now := s.now()
	is.StateID = st.ID
	is.CompletedAt, is.CanceledAt = nil, nil
	switch st.Type {
	case "started":
		if is.StartedAt == nil {
			is.StartedAt = &now
		}
	case "completed":
		is.CompletedAt = &now
	case "canceled":
		is.CanceledAt = &now
	}
}

func (s *Server) updateIssue(actor *user, is *issue, in map[string]any) error {
	from := map[string]any{}
	if err := s.applyIssueInput(is, in, from); err != nil {
		return err
	}
	if len(from) == 0 {
		return nil
	}
	from["updatedAt"] = iso(is.UpdatedAt)
	is.UpdatedAt = s.now()
	s.emit(event{action: "update", typ: "Issue", data: s.issueData(is), updatedFrom: from, actor: actor,
		url: s.issueURL(is), teamID: is.TeamID, at: is.UpdatedAt})
	return nil
}

// deleteIssue trashes the issue; Linear announces it as "remove" with trashed and archivedAt set.
func (s *Server) deleteIssue(actor *user, is *issue) {
	now := s.now()
	trashed := true
	is.Trashed, is.ArchivedAt, is.UpdatedAt = &trashed, &now, now
	s.emit(event{action: "remove", typ: "Issue", data: s.issueData(is), actor: actor, url: s.issueURL(is), teamID: is.TeamID, at: now})
}

func (s *Server) createComment(actor *user, in map[string]any) (*comment, error) {
	issueID, _ := str(in, "issueId")
	is := s.issueByIDOrIdentifier(issueID)
	if is == nil {
		return nil, notFound("Issue")
	}
	id, err := chooseID(in, "Comment", func(id string) bool { return s.comments[id] != nil })
	if err != nil {
		return nil, err
	}
	body, _ := str(in, "body")
	if body == "" {
		return nil, errorf("Argument Validation Error: body should not be empty")
	}
	now := s.now()
	c := &comment{ID: id, IssueID: is.ID, UserID: actor.ID, Body: body, ParentID: optStr(in, "parentId"), CreatedAt: now, UpdatedAt: now}
	s.comments[id] = c
	s.emit(event{action: "create", typ: "Comment", data: s.commentData(c), actor: actor, url: s.commentURL(is, c), teamID: is.TeamID, at: now})
	return c, nil
}

// editComment changes a comment's body; Linear announces it as Comment "update" with the previous body.
func (s *Server) editComment(actor *user, c *comment, body string) error {
	if body == "" {
		return errorf("Argument Validation Error: body should not be empty")
	}
	if c.ArchivedAt != nil {
		return notFound("Comment")
	}
	from := map[string]any{"body": c.Body, "updatedAt": iso(c.UpdatedAt), "editedAt": isoPtr(c.EditedAt)}
	now := s.now()
	c.Body, c.UpdatedAt, c.EditedAt = body, now, &now
	is := s.issues[c.IssueID]
	s.emit(event{action: "update", typ: "Comment", data: s.commentData(c), updatedFrom: from, actor: actor,
		url: s.commentURL(is, c), teamID: is.TeamID, at: now})
	return nil
}

// deleteComment archives a comment; Linear announces it as Comment "remove".
func (s *Server) deleteComment(actor *user, c *comment) {
	now := s.now()
	c.ArchivedAt, c.UpdatedAt = &now, now
	is := s.issues[c.IssueID]
	s.emit(event{action: "remove", typ: "Comment", data: s.commentData(c), actor: actor, url: s.commentURL(is, c),
		teamID: is.TeamID, at: now})
}

// moveIssue moves an issue to another team, as Linear does: a new number and identifier in that team (the old one
// kept in previousIdentifiers), the team's state of the same type. The webhook goes to the new team's webhooks.
func (s *Server) moveIssue(actor *user, is *issue, teamID string) error {
	t := s.teamByIDOrKey(teamID)
	if t == nil {
		return notFound("Team")
	}
	if t.ID == is.TeamID {
		return nil
	}
	from := map[string]any{"teamId": is.TeamID, "stateId": is.StateID, "number": is.Number,
		"identifier": is.Identifier, "updatedAt": iso(is.UpdatedAt)}
	typ := ""
	if st := s.states[is.StateID]; st != nil {
		typ = st.Type
	}
	to := s.stateOfType(t.ID, typ)
	if to == nil {
		to = s.states[t.DefaultStateID]
	}
	is.PreviousIdentifiers = append(is.PreviousIdentifiers, is.Identifier)
	t.issueCount++
	is.TeamID, is.Number, is.Identifier, is.StateID = t.ID, t.issueCount, t.Key+"-"+itoa(t.issueCount), to.ID
	is.UpdatedAt = s.now()
	s.emit(event{action: "update", typ: "Issue", data: s.issueData(is), updatedFrom: from, actor: actor,
		url: s.issueURL(is), teamID: is.TeamID, at: is.UpdatedAt})
	return nil
}

func (s *Server) createLabel(actor *user, in map[string]any) (*label, error) {
	id, err := chooseID(in, "IssueLabel", func(id string) bool { return s.labels[id] != nil })
	if err != nil {
		return nil, err
	}
	name, _ := str(in, "name")
	teamID := optStr(in, "teamId")
	if teamID != nil && s.teams[*teamID] == nil {
		return nil, notFound("Team")
	}
	for _, l := range s.labels {
		if sameTeam(l.TeamID, teamID) && strings.EqualFold(l.Name, name) {
			return nil, userError("duplicate label name", "A label with this name already exists.")
		}
	}
	color, _ := str(in, "color")
	if color == "" {
		color = "#bec2c8"
	}
	now := s.now()
	l := &label{ID: id, Name: name, Color: color, TeamID: teamID, ParentID: optStr(in, "parentId"), CreatedAt: now, UpdatedAt: now}
	l.IsGroup, _ = in["isGroup"].(bool)
	s.labels[id] = l
	tid := ""
	if teamID != nil {
		tid = *teamID
	}
	s.emit(event{action: "create", typ: "IssueLabel", data: s.labelData(l), actor: actor, teamID: tid, at: now})
	return l, nil
}

func (s *Server) createWebhook(actor *user, in map[string]any) (*webhook, error) {
	id, err := chooseID(in, "Webhook", func(id string) bool { return s.webhooks[id] != nil })
	if err != nil {
		return nil, err
	}
	url, _ := str(in, "url")
	all, _ := in["allPublicTeams"].(bool)
	teamID := optStr(in, "teamId")
	if teamID != nil {
		t := s.teamByIDOrKey(*teamID)
		if t == nil {
			return nil, notFound("Team")
		}
		teamID = &t.ID
	} else if !all {
		return nil, errorf("Argument Validation Error: either teamId or allPublicTeams is required")
	}
	now := s.now()
	wh := &webhook{ID: id, URL: url, CreatorID: actor.ID, Label: optStr(in, "label"), TeamID: teamID,
		AllPublicTeams: all, Enabled: true, ResourceTypes: strs(in["resourceTypes"]), CreatedAt: now, UpdatedAt: now}
	if e, ok := in["enabled"].(bool); ok {
		wh.Enabled = e
	}
	if wh.Secret, _ = str(in, "secret"); wh.Secret == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		wh.Secret = "lin_wh_" + hex.EncodeToString(b)
	}
	s.webhooks[id] = wh
	return wh, nil
}

func (s *Server) updateWebhook(wh *webhook, in map[string]any) {
	if v, ok := str(in, "url"); ok {
		wh.URL = v
	}
	if v, ok := str(in, "secret"); ok {
		wh.Secret = v
	}
	if _, ok := in["label"]; ok {
		wh.Label = optStr(in, "label")
	}
	if v, ok := in["resourceTypes"]; ok {
		wh.ResourceTypes = strs(v)
	}
	if v, ok := in["enabled"].(bool); ok {
		wh.Enabled = v
		if v {
			wh.failures = 0
		}
	}
	wh.UpdatedAt = s.now()
}

func itoa(n int) string { return strconv.Itoa(n) }

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// sameTeam reports whether two optional team ids are the same (both nil: workspace).
func sameTeam(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}
