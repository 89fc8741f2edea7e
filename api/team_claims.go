package api

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
)

// The teams a workspace claims of its Linear organization, for organizations shared by several workspaces: each
// delivery about a claimed team goes to the workspace that claims it (webhooks_teams.go).

// claimOrganization is the Linear organization a workspace's claims are in: its connection's, else the one its
// webhooks are registered for.
func (s *Server) claimOrganization(ctx context.Context, workspaceID string) (string, error) {
	conn, err := s.db.FindConnection(ctx, workspaceID)
	if err == nil {
		return conn.OrganizationID, nil
	}
	if linsync.ErrorCode(err) != linsync.ENOTFOUND {
		return "", err
	}
	hooks, err := s.db.ListLinearWebhooks(ctx, workspaceID)
	if err != nil {
		return "", err
	}
	orgs := map[string]bool{}
	for _, h := range hooks {
		orgs[h.OrganizationID] = true
	}
	if len(orgs) != 1 {
		return "", linsync.Errorf(linsync.ECONFLICT, "connect Linear or register one organization's webhook before claiming its teams")
	}
	for org := range orgs {
		return org, nil
	}
	return "", nil
}

func (s *Server) handleGetTeamClaims(c *gin.Context) {
	ws := workspaceOf(c)
	org, err := s.claimOrganization(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	teams, err := s.db.WorkspaceTeamClaims(c, ws.ID, org)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if teams == nil {
		teams = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"organization_id": org, "team_ids": teams})
}

type teamClaimsRequest struct {
	TeamIDs []string `json:"team_ids"`
}

// handlePutTeamClaims replaces the teams the workspace claims. With a connection, each team (id or key) must be one
// its credential sees and is stored as its id; a team another workspace claims is a 409 and nothing changes. An
// empty list returns the workspace to taking every delivery of its organization.
func (s *Server) handlePutTeamClaims(c *gin.Context) {
	var req teamClaimsRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.TeamIDs == nil {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "team_ids", Message: "team_ids is required (an empty list clears them)"})
		return
	}
	ws := workspaceOf(c)
	org, err := s.claimOrganization(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	teams := make([]string, 0, len(req.TeamIDs))
	lc, _, lerr := s.linearFor(c, ws.ID)
	for _, t := range req.TeamIDs {
		t = strings.TrimSpace(t)
		if t == "" {
			s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "team_ids", Message: "a team id may not be empty"})
			return
		}
		if lerr == nil {
			p, err := probeWith(c, lc, t)
			if err != nil {
				if le, ok := err.(*linsync.Error); ok && le.Field != "" {
					le.Field = "team_ids"
				}
				s.writeError(c, err)
				return
			}
			t = p.teamID
		}
		if !slices.Contains(teams, t) {
			teams = append(teams, t)
		}
	}
	if err := s.db.SetTeamClaims(c, ws.ID, org, teams); err != nil {
		s.writeError(c, err)
		return
	}
	s.claims.drop(org)
	s.log.InfoContext(c, "linear team claims set", "workspace_id", ws.ID, "organization_id", org, "teams", len(teams))
	c.JSON(http.StatusOK, gin.H{"organization_id": org, "team_ids": teams})
}
