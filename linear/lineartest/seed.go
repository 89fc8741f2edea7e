package lineartest

// Seeded is the workspace Seed creates; its ids are fixed so tests and printed instructions can name them.
type Seeded struct {
	OrganizationID string
	// APIKey authenticates as Bot, the user linsync acts as; its writes come back with Bot as the actor.
	APIKey string
	// OAuthToken authenticates as Bot too, sent as a Bearer token.
	OAuthToken string
	Bot        SeedUser
	// Alice and Bob are humans who edit issues through Human.
	Alice, Bob SeedUser
	// Triage is a team with triage enabled; Plain has none.
	Triage, Plain SeedTeam
	// Labels maps a workspace label name to its id.
	Labels map[string]string
}

// SeedUser is a seeded user.
type SeedUser struct{ ID, Name, Email string }

// SeedTeam is a seeded team and its workflow states by type (triage, backlog, unstarted, started, completed,
// canceled, duplicate).
type SeedTeam struct {
	ID, Key, Name string
	States        map[string]string
	// Labels maps a team label name to its id.
	Labels map[string]string
}

// Seed fills the workspace with an organization, two teams (one with triage), three users and labels, and
// returns their ids. It is idempotent.
func (s *Server) Seed() Seeded {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.created
	sd := Seeded{
		OrganizationID: s.org.ID,
		APIKey:         "lin_api_fake0000000000000000000000000000linsync",
		OAuthToken:     "lin_oauth_fake000000000000000000000000linsync",
		Bot:            SeedUser{"5a1b0000-0000-4000-8000-000000000001", "linsync", "linsync@example.com"},
		Alice:          SeedUser{"5a1b0000-0000-4000-8000-000000000002", "Alice Example", "alice@example.com"},
		Bob:            SeedUser{"5a1b0000-0000-4000-8000-000000000003", "Bob Example", "bob@example.com"},
		Labels:         map[string]string{"Bug": "1abe0000-0000-4000-8000-000000000001", "Feature": "1abe0000-0000-4000-8000-000000000002"},
	}
	for _, u := range []SeedUser{sd.Bot, sd.Alice, sd.Bob} {
		s.users[u.ID] = &user{ID: u.ID, Name: u.Name, DisplayName: u.Email[:len(u.Email)-len("@example.com")], Email: u.Email, Admin: true}
	}
	s.keys[sd.APIKey] = sd.Bot.ID
	s.keys["Bearer "+sd.OAuthToken] = sd.Bot.ID
	sd.Triage = s.seedTeam("7ea30000-0000-4000-8000-000000000001", "SUP", "Support", true, 1)
	sd.Plain = s.seedTeam("7ea30000-0000-4000-8000-000000000002", "ENG", "Engineering", false, 2)
	colors := map[string]string{"Bug": "#eb5757", "Feature": "#bb87fc"}
	for name, id := range sd.Labels {
		s.labels[id] = &label{ID: id, Name: name, Color: colors[name], CreatedAt: now, UpdatedAt: now}
	}
	return sd
}

// seedTeam creates a team with states of every type (triage only when enabled) and one team label.
func (s *Server) seedTeam(id, key, name string, triage bool, n int) SeedTeam {
	now := s.created
	st := SeedTeam{ID: id, Key: key, Name: name, States: map[string]string{}, Labels: map[string]string{}}
	t := &team{ID: id, Key: key, Name: name, TriageEnabled: triage, CreatedAt: now}
	states := []struct{ typ, name, color string }{
		{"triage", "Triage", "#fc7840"}, {"backlog", "Backlog", "#bec2c8"}, {"unstarted", "Todo", "#e2e2e2"},
		{"started", "In Progress", "#f2c94c"}, {"completed", "Done", "#5e6ad2"}, {"canceled", "Canceled", "#95a2b3"},
		{"duplicate", "Duplicate", "#95a2b3"},
	}
	for i, sdef := range states {
		if sdef.typ == "triage" && !triage {
			continue
		}
		sid := "57a70000-0000-4000-8000-00000000" + string(rune('0'+n)) + string(rune('0'+i)) + "00"
		s.states[sid] = &workflowState{ID: sid, TeamID: id, Name: sdef.name, Type: sdef.typ, Color: sdef.color, Position: float64(i), CreatedAt: now}
		st.States[sdef.typ] = sid
	}
	t.DefaultStateID = st.States["backlog"]
	s.teams[id] = t
	lid := "1abe0000-0000-4000-8000-00000000" + string(rune('0'+n)) + "100"
	tid := id
	s.labels[lid] = &label{ID: lid, Name: "Customer", Color: "#26b5ce", TeamID: &tid, CreatedAt: now, UpdatedAt: now}
	st.Labels["Customer"] = lid
	return st
}

// AddTeam creates a team with states of every type (triage too when asked) and a "Customer" label, public or
// private, and returns its ids. n (3 to 9) makes its fixed ids distinct from the seeded teams'.
func (s *Server) AddTeam(id, key, name string, triage, private bool, n int) SeedTeam {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seedTeam(id, key, name, triage, n)
	s.teams[id].Private = private
	return st
}

// AddWebhook registers a webhook for all public teams, as an admin would in Linear's settings, and returns its id.
// With no resource types it subscribes to Issue, Comment and IssueLabel.
func (s *Server) AddWebhook(url, secret string, resourceTypes ...string) string {
	if len(resourceTypes) == 0 {
		resourceTypes = []string{"Issue", "Comment", "IssueLabel"}
	}
	types := make([]any, len(resourceTypes))
	for i, t := range resourceTypes {
		types[i] = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var creator *user
	for _, u := range s.users {
		if creator == nil || u.ID < creator.ID {
			creator = u
		}
	}
	if creator == nil {
		creator = &user{}
	}
	wh, _ := s.createWebhook(creator, map[string]any{"url": url, "secret": secret, "allPublicTeams": true, "resourceTypes": types})
	return wh.ID
}
