package lineartest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Entities of the fake workspace. Times are UTC; nil pointers are Linear's nulls.
type (
	user struct {
		ID, Name, DisplayName, Email string
		Admin, App                   bool
	}
	team struct {
		ID, Key, Name string
		TriageEnabled bool
		// Private teams are seen only by their members; a webhook for all public teams does not deliver their
		// events, only one scoped to the team does.
		Private        bool
		DefaultStateID string
		issueCount     int
		CreatedAt      time.Time
	}
	workflowState struct {
		ID, TeamID, Name, Type, Color string
		Position                      float64
		CreatedAt                     time.Time
	}
	label struct {
		ID, Name, Color string
		TeamID          *string
		ParentID        *string
		IsGroup         bool
		CreatedAt       time.Time
		UpdatedAt       time.Time
	}
	issue struct {
		ID, TeamID, Identifier, Title, StateID, CreatorID string
		Number                                            int
		Description, AssigneeID, DueDate, ParentID        *string
		Priority                                          int
		LabelIDs, SubscriberIDs, PreviousIdentifiers      []string
		Estimate                                          *int
		Trashed                                           *bool
		CreatedAt, UpdatedAt                              time.Time
		ArchivedAt, StartedAt, CompletedAt, CanceledAt    *time.Time
	}
	comment struct {
		ID, IssueID, UserID, Body string
		ParentID                  *string
		CreatedAt, UpdatedAt      time.Time
		// EditedAt is set when the body was edited; ArchivedAt when the comment was deleted (Linear keeps it
		// archived, and lists it only with includeArchived).
		EditedAt, ArchivedAt *time.Time
	}
	webhook struct {
		ID, URL, Secret, CreatorID string
		Label, TeamID              *string
		Enabled, AllPublicTeams    bool
		ResourceTypes              []string
		CreatedAt, UpdatedAt       time.Time
		failures                   int
	}
)

// iso formats a time the way Linear does: UTC with milliseconds.
func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func isoPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return iso(*t)
}

func strPtr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

var priorityLabels = []string{"No priority", "Urgent", "High", "Medium", "Low"}

func priorityLabel(p int) string {
	if p >= 0 && p < len(priorityLabels) {
		return priorityLabels[p]
	}
	return priorityLabels[0]
}

// descriptionData renders markdown as the ProseMirror JSON string Linear keeps beside it.
func descriptionData(md *string) any {
	if md == nil {
		return nil
	}
	var paras []any
	for _, p := range strings.Split(*md, "\n\n") {
		para := map[string]any{"type": "paragraph"}
		if p != "" {
			para["content"] = []any{map[string]any{"type": "text", "text": p}}
		}
		paras = append(paras, para)
	}
	b, _ := json.Marshal(map[string]any{"type": "doc", "content": paras})
	return string(b)
}

func (s *Server) orgURL() string { return "https://linear.app/" + s.org.URLKey }

func (s *Server) userURL(u *user) string {
	return s.orgURL() + "/profiles/" + strings.Split(u.Email, "@")[0]
}

func (s *Server) issueURL(is *issue) string {
	return s.orgURL() + "/issue/" + is.Identifier + "/" + slug(is.Title)
}

func slug(t string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(t) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// GraphQL objects. Callers hold s.mu.

func (s *Server) userObj(u *user) any {
	if u == nil {
		return nil
	}
	return obj{"__typename": "User", "id": u.ID, "name": u.Name, "displayName": u.DisplayName, "email": u.Email,
		"active": true, "admin": u.Admin, "app": u.App, "guest": false, "isMe": false, "url": s.userURL(u),
		"avatarUrl": nil, "createdAt": iso(s.created), "updatedAt": iso(s.created), "archivedAt": nil}
}

func (s *Server) userByID(id *string) any {
	if id == nil {
		return nil
	}
	return s.userObj(s.users[*id])
}

func (s *Server) teamObj(t *team) any {
	if t == nil {
		return nil
	}
	return obj{"__typename": "Team", "id": t.ID, "key": t.Key, "name": t.Name, "triageEnabled": t.TriageEnabled,
		"createdAt": iso(t.CreatedAt), "updatedAt": iso(t.CreatedAt), "archivedAt": nil, "private": t.Private, "visibility": t.visibility(),
		"cyclesEnabled": false, "timezone": "UTC", "description": nil,
		"defaultIssueState": lazy(func(map[string]any) (any, error) { return s.stateObj(s.states[t.DefaultStateID]), nil }),
		"states": lazy(func(args map[string]any) (any, error) {
			return connection("WorkflowState", s.stateObjs(func(st *workflowState) bool { return st.TeamID == t.ID }), args)
		}),
		"labels": lazy(func(args map[string]any) (any, error) {
			return connection("IssueLabel", s.labelObjs(func(l *label) bool { return l.TeamID != nil && *l.TeamID == t.ID }), args)
		}),
		"issues": lazy(func(args map[string]any) (any, error) {
			return connection("Issue", s.issueObjs(func(is *issue) bool { return is.TeamID == t.ID }), args)
		}),
	}
}

func (t *team) visibility() string {
	if t.Private {
		return "private"
	}
	return "public"
}

func (s *Server) stateObj(st *workflowState) any {
	if st == nil {
		return nil
	}
	return obj{"__typename": "WorkflowState", "id": st.ID, "name": st.Name, "type": st.Type, "color": st.Color,
		"position": st.Position, "description": nil, "createdAt": iso(st.CreatedAt), "updatedAt": iso(st.CreatedAt),
		"archivedAt": nil, "team": lazy(func(map[string]any) (any, error) { return s.teamObj(s.teams[st.TeamID]), nil })}
}

func (s *Server) labelObj(l *label) any {
	if l == nil {
		return nil
	}
	return obj{"__typename": "IssueLabel", "id": l.ID, "name": l.Name, "color": l.Color, "isGroup": l.IsGroup,
		"description": nil, "createdAt": iso(l.CreatedAt), "updatedAt": iso(l.UpdatedAt), "archivedAt": nil,
		"team": lazy(func(map[string]any) (any, error) {
			if l.TeamID == nil {
				return nil, nil
			}
			return s.teamObj(s.teams[*l.TeamID]), nil
		}),
		"parent": lazy(func(map[string]any) (any, error) {
			if l.ParentID == nil {
				return nil, nil
			}
			return s.labelObj(s.labels[*l.ParentID]), nil
		}),
	}
}

func (s *Server) issueObj(is *issue) any {
	if is == nil {
		return nil
	}
	var estimate any
	if is.Estimate != nil {
		estimate = float64(*is.Estimate)
	}
	return obj{"__typename": "Issue", "id": is.ID, "identifier": is.Identifier, "number": float64(is.Number),
		"title": is.Title, "description": strPtr(is.Description), "priority": float64(is.Priority),
		"priorityLabel": priorityLabel(is.Priority), "url": s.issueURL(is), "branchName": strings.ToLower(is.Identifier),
		"dueDate": strPtr(is.DueDate), "estimate": estimate, "createdAt": iso(is.CreatedAt), "updatedAt": iso(is.UpdatedAt),
		"archivedAt": isoPtr(is.ArchivedAt), "startedAt": isoPtr(is.StartedAt), "completedAt": isoPtr(is.CompletedAt),
		"canceledAt": isoPtr(is.CanceledAt), "trashed": boolPtr(is.Trashed), "labelIds": slices.Clone(is.LabelIDs),
		"previousIdentifiers": append([]string{}, is.PreviousIdentifiers...),
		"state":               lazy(func(map[string]any) (any, error) { return s.stateObj(s.states[is.StateID]), nil }),
		"team":                lazy(func(map[string]any) (any, error) { return s.teamObj(s.teams[is.TeamID]), nil }),
		"assignee":            lazy(func(map[string]any) (any, error) { return s.userByID(is.AssigneeID), nil }),
		"creator":             lazy(func(map[string]any) (any, error) { return s.userByID(&is.CreatorID), nil }),
		"parent": lazy(func(map[string]any) (any, error) {
			if is.ParentID == nil {
				return nil, nil
			}
			return s.issueObj(s.issues[*is.ParentID]), nil
		}),
		"labels": lazy(func(args map[string]any) (any, error) {
			return connection("IssueLabel", s.labelObjs(func(l *label) bool { return slices.Contains(is.LabelIDs, l.ID) }), args)
		}),
		"comments": lazy(func(args map[string]any) (any, error) {
			return connection("Comment", s.commentObjs(func(c *comment) bool { return c.IssueID == is.ID }), args)
		}),
	}
}

func boolPtr(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func (s *Server) commentObj(c *comment) any {
	if c == nil {
		return nil
	}
	is := s.issues[c.IssueID]
	return obj{"__typename": "Comment", "id": c.ID, "body": c.Body, "url": s.commentURL(is, c),
		"createdAt": iso(c.CreatedAt), "updatedAt": iso(c.UpdatedAt), "editedAt": isoPtr(c.EditedAt),
		"archivedAt": isoPtr(c.ArchivedAt), "issueId": c.IssueID,
		"issue": lazy(func(map[string]any) (any, error) { return s.issueObj(is), nil }),
		"user":  lazy(func(map[string]any) (any, error) { return s.userByID(&c.UserID), nil }),
		"parent": lazy(func(map[string]any) (any, error) {
			if c.ParentID == nil {
				return nil, nil
			}
			return s.commentObj(s.comments[*c.ParentID]), nil
		}),
	}
}

func (s *Server) commentURL(is *issue, c *comment) string {
	if is == nil {
		return s.orgURL()
	}
	return s.orgURL() + "/issue/" + is.Identifier + "#comment-" + c.ID[:8]
}

func (s *Server) webhookObj(w *webhook) any {
	if w == nil {
		return nil
	}
	return obj{"__typename": "Webhook", "id": w.ID, "url": w.URL, "label": strPtr(w.Label), "enabled": w.Enabled,
		"allPublicTeams": w.AllPublicTeams, "resourceTypes": slices.Clone(w.ResourceTypes), "secret": w.Secret,
		"createdAt": iso(w.CreatedAt), "updatedAt": iso(w.UpdatedAt), "archivedAt": nil,
		"team": lazy(func(map[string]any) (any, error) {
			if w.TeamID == nil {
				return nil, nil
			}
			return s.teamObj(s.teams[*w.TeamID]), nil
		}),
		"creator": lazy(func(map[string]any) (any, error) { return s.userByID(&w.CreatorID), nil }),
	}
}

func collect[T any](m map[string]*T, keep func(*T) bool, build func(*T) any) []obj {
	var out []obj
	for _, v := range m {
		if keep == nil || keep(v) {
			out = append(out, build(v).(obj))
		}
	}
	return out
}

func (s *Server) stateObjs(keep func(*workflowState) bool) []obj {
	return collect(s.states, keep, s.stateObj)
}
func (s *Server) labelObjs(keep func(*label) bool) []obj { return collect(s.labels, keep, s.labelObj) }
func (s *Server) issueObjs(keep func(*issue) bool) []obj { return collect(s.issues, keep, s.issueObj) }
func (s *Server) commentObjs(keep func(*comment) bool) []obj {
	return collect(s.comments, keep, s.commentObj)
}

// query resolves the root Query fields linsync uses (and a few neighbours useful to tests).
func (s *Server) query(viewer *user) obj {
	byID := func(entity string, find func(id string) any) lazy {
		return func(args map[string]any) (any, error) {
			id, _ := args["id"].(string)
			if v := find(id); v != nil {
				return v, nil
			}
			return nil, notFound(entity)
		}
	}
	return obj{
		"__typename": "Query",
		"viewer":     lazy(func(map[string]any) (any, error) { return s.userObj(viewer), nil }),
		"organization": lazy(func(map[string]any) (any, error) {
			return obj{"__typename": "Organization", "id": s.org.ID, "name": s.org.Name, "urlKey": s.org.URLKey,
				"createdAt": iso(s.created), "userCount": float64(len(s.users)),
				"teams": lazy(func(args map[string]any) (any, error) {
					return connection("Team", collect(s.teams, nil, s.teamObj), args)
				}),
				"users": lazy(func(args map[string]any) (any, error) {
					return connection("User", collect(s.users, nil, s.userObj), args)
				})}, nil
		}),
		"teams": lazy(func(args map[string]any) (any, error) {
			return connection("Team", collect(s.teams, nil, s.teamObj), args)
		}),
		"team": byID("Team", func(id string) any { return s.teamObj(s.teamByIDOrKey(id)) }),
		"users": lazy(func(args map[string]any) (any, error) {
			return connection("User", collect(s.users, nil, s.userObj), args)
		}),
		"user":  byID("User", func(id string) any { return s.userObj(s.users[id]) }),
		"issue": byID("Issue", func(id string) any { return s.issueObj(s.issueByIDOrIdentifier(id)) }),
		"issues": lazy(func(args map[string]any) (any, error) {
			return connection("Issue", s.issueObjs(nil), args)
		}),
		"comment": byID("Comment", func(id string) any { return s.commentObj(s.comments[id]) }),
		"comments": lazy(func(args map[string]any) (any, error) {
			return connection("Comment", s.commentObjs(nil), args)
		}),
		"workflowStates": lazy(func(args map[string]any) (any, error) {
			return connection("WorkflowState", s.stateObjs(nil), args)
		}),
		"issueLabels": lazy(func(args map[string]any) (any, error) {
			return connection("IssueLabel", s.labelObjs(nil), args)
		}),
		"webhooks": lazy(func(args map[string]any) (any, error) {
			return connection("Webhook", collect(s.webhooks, nil, s.webhookObj), args)
		}),
		"webhook": byID("Webhook", func(id string) any { return s.webhookObj(s.webhooks[id]) }),
		"rateLimitStatus": lazy(func(map[string]any) (any, error) {
			w := s.window(viewer.ID, s.now())
			reset := float64(w.start.Add(time.Hour).UnixMilli())
			return obj{"__typename": "RateLimitPayload", "identifier": viewer.ID, "kind": "api key",
				"limits": []obj{{"__typename": "RateLimitResultPayload", "type": "requestLimit",
					"allowedAmount": float64(s.opts.RequestsPerHour), "remainingAmount": float64(s.opts.RequestsPerHour - w.count),
					"requestedAmount": float64(1), "reset": reset, "period": float64(time.Hour.Milliseconds())}}}, nil
		}),
	}
}

// byIDOrName finds an entity by id, or by the human name Linear also accepts (a team key, an issue identifier).
func byIDOrName[T any](m map[string]*T, id string, name func(*T) string) *T {
	if v, ok := m[id]; ok {
		return v
	}
	for _, v := range m {
		if strings.EqualFold(name(v), id) {
			return v
		}
	}
	return nil
}

func (s *Server) teamByIDOrKey(id string) *team {
	return byIDOrName(s.teams, id, func(t *team) string { return t.Key })
}

func (s *Server) issueByIDOrIdentifier(id string) *issue {
	if is := byIDOrName(s.issues, id, func(is *issue) string { return is.Identifier }); is != nil {
		return is
	}
	// An identifier from before a team move still finds the issue, as Linear redirects it.
	for _, is := range s.issues {
		for _, prev := range is.PreviousIdentifiers {
			if strings.EqualFold(prev, id) {
				return is
			}
		}
	}
	return nil
}

// stateOfType returns the team's first state of a type.
func (s *Server) stateOfType(teamID, typ string) *workflowState {
	var best *workflowState
	for _, st := range s.states {
		if st.TeamID == teamID && st.Type == typ && (best == nil || st.Position < best.Position) {
			best = st
		}
	}
	return best
}

func errorf(format string, args ...any) *gqlErr {
	msg := fmt.Sprintf(format, args...)
	return userError(msg, msg)
}
