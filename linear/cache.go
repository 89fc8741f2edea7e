package linear

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// cached is one cache entry; a zero entry is a miss.
type cached[T any] struct {
	value   T
	expires time.Time
}

func (e cached[T]) fresh(now time.Time) bool { return now.Before(e.expires) }

// lookup returns the fresh cache entry for key, counting the hit or miss in metrics.
func lookup[T any](c *Client, m map[string]cached[T], key, cache string) (T, bool) {
	c.mu.Lock()
	e, ok := m[key]
	c.mu.Unlock()
	hit := ok && e.fresh(c.opts.Now())
	c.opts.Metrics.observeCache(c.name, cache, hit)
	return e.value, hit
}

// Team is a team with what the hot path looks up: its triage flag, workflow states, and the labels usable on its
// issues (its own and the workspace's).
type Team struct {
	TeamFields
	States []StateFields
	Labels []LabelFields
}

// StateByType returns the first state (lowest position) of a type: triage, backlog, unstarted, started,
// completed, canceled or duplicate.
func (t *Team) StateByType(typ string) (StateFields, bool) {
	var best StateFields
	found := false
	for _, s := range t.States {
		if s.Type == typ && (!found || s.Position < best.Position) {
			best, found = s, true
		}
	}
	return best, found
}

// StateByID returns the team's state with id.
func (t *Team) StateByID(id string) (StateFields, bool) {
	for _, s := range t.States {
		if s.Id == id {
			return s, true
		}
	}
	return StateFields{}, false
}

// Label returns the label named name, ignoring case; a team label wins over a workspace label of the same name.
func (t *Team) Label(name string) (LabelFields, bool) {
	var ws LabelFields
	found := false
	for _, l := range t.Labels {
		if !strings.EqualFold(l.Name, name) {
			continue
		}
		if l.Team != nil {
			return l, true
		}
		ws, found = l, true
	}
	return ws, found
}

// shared runs fn once for every caller that asks for key while it runs (singleflight), so concurrent cache misses
// cost one request to Linear. fn runs without the callers' cancellation, since one caller giving up must not fail
// the others; each caller still stops waiting when its own context ends.
func shared[T any](ctx context.Context, c *Client, key string, fn func(context.Context) (T, error)) (T, error) {
	ch := c.flight.DoChan(key, func() (any, error) { return fn(context.WithoutCancel(ctx)) })
	select {
	case <-ctx.Done():
		var zero T
		return zero, Classify(ctx.Err())
	case r := <-ch:
		v, _ := r.Val.(T)
		return v, r.Err
	}
}

// Team returns the team with id, from the cache when fresh.
func (c *Client) Team(ctx context.Context, id string) (*Team, error) {
	if t, hit := lookup(c, c.teams, id, "team"); hit {
		return t, nil
	}
	return c.refreshTeam(ctx, id)
}

// refreshTeam fetches the team and caches it; concurrent refreshes of one team share one request.
func (c *Client) refreshTeam(ctx context.Context, id string) (*Team, error) {
	return shared(ctx, c, "team\x00"+id, func(ctx context.Context) (*Team, error) { return c.fetchTeam(ctx, id) })
}

func (c *Client) fetchTeam(ctx context.Context, id string) (*Team, error) {
	resp, err := TeamDetails(ctx, c, id)
	if err != nil {
		return nil, fmt.Errorf("get team %s: %w", id, err)
	}
	t := &Team{TeamFields: resp.Team.TeamFields}
	for _, s := range resp.Team.States.Nodes {
		t.States = append(t.States, s.StateFields)
	}
	for _, l := range resp.Team.Labels.Nodes {
		t.Labels = append(t.Labels, l.LabelFields)
	}
	for _, l := range resp.WorkspaceLabels.Nodes {
		t.Labels = append(t.Labels, l.LabelFields)
	}
	c.mu.Lock()
	c.teams[id] = cached[*Team]{value: t, expires: c.opts.Now().Add(c.opts.CacheTTL)}
	c.mu.Unlock()
	return t, nil
}

// teamWith returns the team and ok=true when has finds what it needs; on a miss it refreshes the team once, since a
// state or label may have been added in Linear since the team was cached.
func (c *Client) teamWith(ctx context.Context, teamID string, has func(*Team) bool) (*Team, bool, error) {
	t, err := c.Team(ctx, teamID)
	if err != nil {
		return nil, false, err
	}
	if has(t) {
		return t, true, nil
	}
	if t, err = c.refreshTeam(ctx, teamID); err != nil {
		return nil, false, err
	}
	return t, has(t), nil
}

// State returns the team's first workflow state of stateType, refreshing the team once on a miss.
func (c *Client) State(ctx context.Context, teamID, stateType string) (StateFields, error) {
	t, ok, err := c.teamWith(ctx, teamID, func(t *Team) bool { _, ok := t.StateByType(stateType); return ok })
	if err != nil {
		return StateFields{}, err
	}
	if !ok {
		return StateFields{}, &Error{Class: ClassNotFound, Message: fmt.Sprintf("team %s has no %s state", teamID, stateType)}
	}
	s, _ := t.StateByType(stateType)
	return s, nil
}

// LabelIDs resolves label names to ids for issues of a team, refreshing the team once on a miss and creating the
// labels still missing as team labels. The created label's id is derived from team and name, so two workers
// creating the same label converge on one.
func (c *Client) LabelIDs(ctx context.Context, teamID string, names []string) ([]string, error) {
	hasAll := func(t *Team) bool {
		for _, n := range names {
			if _, ok := t.Label(n); !ok {
				return false
			}
		}
		return true
	}
	t, _, err := c.teamWith(ctx, teamID, hasAll)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(names))
	created := false
	for _, n := range names {
		if l, ok := t.Label(n); ok {
			ids = append(ids, l.Id)
			continue
		}
		id, err := c.createLabel(ctx, teamID, n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		created = true
	}
	if created {
		c.InvalidateTeam(teamID)
	}
	return ids, nil
}

// createLabel creates a team label and returns its id; concurrent creates of one label share one request. A
// conflict means someone created it first, under our id or under another one (same name): the label is then read
// back from a fresh copy of the team.
func (c *Client) createLabel(ctx context.Context, teamID, name string) (string, error) {
	return shared(ctx, c, "label\x00"+teamID+"\x00"+strings.ToLower(name), func(ctx context.Context) (string, error) {
		return c.sendLabel(ctx, teamID, name)
	})
}

func (c *Client) sendLabel(ctx context.Context, teamID, name string) (string, error) {
	in := IssueLabelCreateInput{ID: LabelID(teamID, name), Name: name, TeamID: teamID}
	_, err := IssueLabelCreate(ctx, c, in)
	if err == nil {
		return in.ID, nil
	}
	if !IsConflict(err) {
		return "", fmt.Errorf("create label %q in team %s: %w", name, teamID, err)
	}
	t, err := c.refreshTeam(ctx, teamID)
	if err != nil {
		return "", err
	}
	if l, ok := t.Label(name); ok {
		return l.Id, nil
	}
	return in.ID, nil
}

// labelNamespace seeds LabelID; changing it would fork label identities.
var labelNamespace = uuid.MustParse("0b6f1c8e-8d0a-4c4e-9a43-5c1d2f6c7a10")

// LabelID is the client-chosen id of the label named name in a team: a UUIDv5 of both, so retries and concurrent
// workers choose the same id and the second create is a conflict rather than a duplicate.
func LabelID(teamID, name string) string {
	return uuid.NewSHA1(labelNamespace, []byte(teamID+"\x00"+strings.ToLower(name))).String()
}

// InvalidateTeam drops the cached team so the next look-up fetches it.
func (c *Client) InvalidateTeam(teamID string) {
	c.mu.Lock()
	delete(c.teams, teamID)
	c.mu.Unlock()
}

// UserByEmail returns the active user with email (matched ignoring case), or nil when there is none; both answers
// are cached, a miss for NegativeTTL only so a newly invited user is found soon. Concurrent misses of one email
// share one request.
func (c *Client) UserByEmail(ctx context.Context, email string) (*UserFields, error) {
	key := strings.ToLower(strings.TrimSpace(email))
	if u, hit := lookup(c, c.users, key, "user"); hit {
		return u, nil
	}
	return shared(ctx, c, "user\x00"+key, func(ctx context.Context) (*UserFields, error) { return c.fetchUser(ctx, key) })
}

func (c *Client) fetchUser(ctx context.Context, key string) (*UserFields, error) {
	resp, err := UsersByEmail(ctx, c, key)
	if err != nil {
		return nil, fmt.Errorf("find user by email: %w", err)
	}
	var u *UserFields
	for _, n := range resp.Users.Nodes {
		if n.Active {
			u = &n.UserFields
			break
		}
	}
	ttl := c.opts.CacheTTL
	if u == nil {
		ttl = c.opts.NegativeTTL
	}
	c.mu.Lock()
	c.users[key] = cached[*UserFields]{value: u, expires: c.opts.Now().Add(ttl)}
	c.mu.Unlock()
	return u, nil
}

// Viewer returns the user the credential acts as, cached; webhooks whose actor is this user are linsync's own writes.
func (c *Client) Viewer(ctx context.Context) (*UserFields, error) {
	now := c.opts.Now()
	c.mu.Lock()
	e := c.viewer
	c.mu.Unlock()
	hit := e.value != nil && e.fresh(now)
	c.opts.Metrics.observeCache(c.name, "viewer", hit)
	if hit {
		return e.value, nil
	}
	resp, err := Viewer(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("get viewer: %w", err)
	}
	u := resp.Viewer.UserFields
	c.mu.Lock()
	c.viewer = cached[*UserFields]{value: &u, expires: c.opts.Now().Add(c.opts.CacheTTL)}
	c.mu.Unlock()
	return &u, nil
}
