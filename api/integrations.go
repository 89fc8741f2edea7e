package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

type connectRequest struct {
	APIKey          string   `json:"api_key"`
	DefaultTeamID   string   `json:"default_team_id"`
	DefaultPriority *int     `json:"default_priority"`
	Labels          []string `json:"labels"`
}

// connectionView is a connection as the API shows it: never a secret, only its last four characters.
type connectionView struct {
	*linsync.LinearConnection
	APIKeyLast4 string `json:"api_key_last4,omitempty"`
}

func viewConnection(c *linsync.LinearConnection) connectionView {
	v := connectionView{LinearConnection: c}
	if c.AuthKind == linsync.AuthAPIKey {
		v.APIKeyLast4 = c.CredentialLast4
	}
	return v
}

// handleConnectLinear connects a workspace to Linear with a personal API key: the key is checked with `viewer`,
// then `teams` (the default team must be one the key sees), and only then stored, encrypted.
func (s *Server) handleConnectLinear(c *gin.Context) {
	var req connectRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	req.APIKey = strings.TrimSpace(req.APIKey)
	switch {
	case req.APIKey == "":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "api_key", Message: "api_key is required"})
		return
	case req.DefaultTeamID == "":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_team_id",
			Message: "default_team_id is required: POST …/integrations/linear/validate with the key lists the teams to pick from"})
		return
	case req.DefaultPriority != nil && (*req.DefaultPriority < 0 || *req.DefaultPriority > 4):
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_priority",
			Message: "default_priority must be Linear's 0 (none), 1 (urgent), 2 (high), 3 (medium) or 4 (low)"})
		return
	}
	ws := workspaceOf(c)
	probe, err := s.probeLinear(c, linear.Credential{APIKey: req.APIKey}, req.DefaultTeamID)
	if err != nil {
		s.log.WarnContext(c, "linear connect refused", "workspace_id", ws.ID, "api_key", linear.Credential{APIKey: req.APIKey}.Redacted(), "err", err)
		s.writeError(c, err)
		return
	}
	priority := 0
	if req.DefaultPriority != nil {
		priority = *req.DefaultPriority
	}
	conn, err := s.db.SaveConnection(c, linsync.ConnectionInput{
		WorkspaceID: ws.ID, OrganizationID: probe.orgID, OrganizationName: probe.orgName, AuthKind: linsync.AuthAPIKey,
		Credential: req.APIKey, ActorUserID: probe.viewer.Id, ActorName: probe.viewer.Name,
		DefaultTeam: probe.teamID, Priority: priority, Labels: req.Labels,
	})
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.log.InfoContext(c, "linear connected", "workspace_id", ws.ID, "organization_id", conn.OrganizationID,
		"auth_kind", conn.AuthKind, "credential", conn.CredentialLast4)
	s.afterAPIKeyConnect(c, ws, conn, linear.Credential{APIKey: req.APIKey}) // webhook registration (oauth.go)
}

type linearProbe struct {
	viewer  *linear.UserFields
	orgID   string
	orgName string
	teams   []linear.TeamFields
	// teamID is the id of the team asked for, which may have been named by its key.
	teamID string
}

// probeLinear checks a credential against Linear: viewer, organization, teams. A refusal by Linear is a 400 that
// says what was wrong; Linear being unreachable or rate limiting is a 503.
func (s *Server) probeLinear(ctx context.Context, cred linear.Credential, teamID string) (*linearProbe, error) {
	lc, err := s.linearClient(cred)
	if err != nil {
		return nil, err
	}
	return probeWith(ctx, lc, teamID)
}

// probeWith runs the probe with a ready client (a stored connection's, refreshed when it is OAuth).
func probeWith(ctx context.Context, lc *linear.Client, teamID string) (*linearProbe, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p := &linearProbe{}
	var err error
	if p.viewer, err = lc.Viewer(ctx); err != nil {
		return nil, linearRefusal("Linear rejected the credential", err)
	}
	org, err := linear.Organization(ctx, lc.GQL())
	if err != nil {
		return nil, linearRefusal("read the Linear organization", err)
	}
	p.orgID, p.orgName = org.Organization.Id, org.Organization.Name
	if p.teams, err = lc.ListTeams(ctx); err != nil {
		return nil, linearRefusal("list Linear teams", err)
	}
	if teamID == "" {
		return p, nil
	}
	for _, t := range p.teams {
		if t.Id == teamID || strings.EqualFold(t.Key, teamID) {
			p.teamID = t.Id
			return p, nil
		}
	}
	keys := make([]string, 0, len(p.teams))
	for _, t := range p.teams {
		keys = append(keys, t.Key+" ("+t.Id+")")
	}
	return nil, &linsync.Error{Code: linsync.EINVALID, Field: "default_team_id",
		Message: fmt.Sprintf("unknown team %q: this credential sees %s", teamID, strings.Join(keys, ", "))}
}

func (s *Server) linearClient(cred linear.Credential) (*linear.Client, error) {
	lc, err := s.linear.New(cred, "")
	if err != nil {
		return nil, linsync.Errorf(linsync.EINVALID, "invalid Linear credential")
	}
	return lc, nil
}

// linearRefusal turns a classified Linear error into an answer for the caller.
func linearRefusal(what string, err error) error {
	le := linear.Classify(err)
	switch le.Class {
	case linear.ClassUnauthorized, linear.ClassForbidden:
		return linsync.Errorf(linsync.EINVALID, "%s: %s (%s)", what, le.Class, le.Message)
	case linear.ClassRateLimited, linear.ClassTransient:
		return linsync.Errorf(linsync.EUNAVAILABLE, "%s: Linear is unavailable (%s); retry later", what, le.Class)
	default:
		return linsync.Errorf(linsync.EINVALID, "%s: %s", what, le.Message)
	}
}

func (s *Server) handleGetLinear(c *gin.Context) {
	conn, err := s.db.FindConnection(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	h, err := s.connectionHealth(c, conn.WorkspaceID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"connection": viewConnection(conn), "paused_work": h.PausedWork})
}

// teamView is a Linear team as the team picker shows it.
type teamView struct {
	ID            string `json:"id"`
	Key           string `json:"key"`
	Name          string `json:"name"`
	TriageEnabled bool   `json:"triage_enabled"`
	// Private teams get a webhook of their own when linsync files into them.
	Private bool `json:"private"`
	Default bool `json:"default"`
}

func viewTeams(teams []linear.TeamFields, defaultTeam string) []teamView {
	out := make([]teamView, 0, len(teams))
	for _, t := range teams {
		out = append(out, teamView{ID: t.Id, Key: t.Key, Name: t.Name, TriageEnabled: t.TriageEnabled,
			Private: t.Visibility != linear.TeamVisibilityPublic, Default: t.Id == defaultTeam})
	}
	return out
}

type validateRequest struct {
	APIKey string `json:"api_key"`
}

// handleValidateLinear is the first step of connecting by key, as a Linear integration card does it: the key is
// checked with `viewer`, and the organization and its teams are listed for the team picker. Nothing is stored; the
// connect that follows names the team picked.
func (s *Server) handleValidateLinear(c *gin.Context) {
	var req validateRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	req.APIKey = strings.TrimSpace(req.APIKey)
	if req.APIKey == "" {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "api_key", Message: "api_key is required"})
		return
	}
	probe, err := s.probeLinear(c, linear.Credential{APIKey: req.APIKey}, "")
	if err != nil {
		s.log.WarnContext(c, "linear key refused", "workspace_id", workspaceOf(c).ID, "api_key", linear.Credential{APIKey: req.APIKey}.Redacted(), "err", err)
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"viewer":        gin.H{"id": probe.viewer.Id, "name": probe.viewer.Name, "email": probe.viewer.Email},
		"organization":  gin.H{"id": probe.orgID, "name": probe.orgName},
		"api_key_last4": linear.Credential{APIKey: req.APIKey}.Redacted(),
		"teams":         viewTeams(probe.teams, ""),
	})
}

type defaultsRequest struct {
	DefaultTeamID   *string   `json:"default_team_id"`
	DefaultPriority *int      `json:"default_priority"`
	Labels          *[]string `json:"labels"`
}

// handleUpdateLinearDefaults changes the connection's default team (checked against the teams the stored credential
// sees), priority and labels; fields left out stay as they are. The webhooks of private teams follow.
func (s *Server) handleUpdateLinearDefaults(c *gin.Context) {
	var req defaultsRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	switch {
	case req.DefaultTeamID == nil && req.DefaultPriority == nil && req.Labels == nil:
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_team_id",
			Message: "nothing to change: send default_team_id, default_priority or labels"})
		return
	case req.DefaultTeamID != nil && strings.TrimSpace(*req.DefaultTeamID) == "":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_team_id", Message: "default_team_id may not be empty"})
		return
	case req.DefaultPriority != nil && (*req.DefaultPriority < 0 || *req.DefaultPriority > 4):
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_priority",
			Message: "default_priority must be Linear's 0 (none), 1 (urgent), 2 (high), 3 (medium) or 4 (low)"})
		return
	}
	var labels []string
	if req.Labels != nil {
		labels = make([]string, 0, len(*req.Labels))
		for i, l := range *req.Labels {
			if l = strings.TrimSpace(l); l == "" {
				s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: fmt.Sprintf("labels[%d]", i), Message: "a label needs a name"})
				return
			}
			labels = append(labels, l)
		}
	}
	ws := workspaceOf(c)
	var team *string
	if req.DefaultTeamID != nil {
		lc, _, err := s.linearFor(c, ws.ID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		p, err := probeWith(c, lc, strings.TrimSpace(*req.DefaultTeamID))
		if err != nil {
			s.writeError(c, err)
			return
		}
		team = &p.teamID
	}
	conn, err := s.db.UpdateConnectionDefaults(c, ws.ID, team, req.DefaultPriority, labels)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.log.InfoContext(c, "linear defaults updated", "workspace_id", ws.ID, "default_team_id", conn.DefaultTeamID,
		"default_priority", conn.DefaultPriority)
	out := gin.H{"connection": viewConnection(conn)}
	if team != nil {
		s.afterFilingTeamsChanged(c, ws, out)
	}
	c.JSON(http.StatusOK, out)
}

// handleLinearTeams serves a team picker from the stored credential.
func (s *Server) handleLinearTeams(c *gin.Context) {
	lc, conn, err := s.linearFor(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	p, err := probeWith(c, lc, "")
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"teams": viewTeams(p.teams, conn.DefaultTeamID)})
}
