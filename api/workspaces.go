package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
)

type createWorkspaceRequest struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// handleCreateWorkspace creates a workspace and its first admin token, shown once (operators, bootstrap token).
func (s *Server) handleCreateWorkspace(c *gin.Context) {
	var req createWorkspaceRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Slug == "" {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "slug", Message: "slug is required"})
		return
	}
	if req.Name == "" {
		req.Name = req.Slug
	}
	if err := tooLong(maxNameBytes, "name", req.Name); err != nil {
		s.writeError(c, err)
		return
	}
	ws, tok, secret, err := s.db.CreateWorkspaceWithToken(c, req.Slug, req.Name, "admin", []string{linsync.ScopeAdmin})
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"workspace": ws, "admin_token": gin.H{"token": secret, "id": tok.ID, "scopes": tok.Scopes}})
}

type createTokenRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func (s *Server) handleCreateToken(c *gin.Context) {
	var req createTokenRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if err := tooLong(maxNameBytes, "name", req.Name); err != nil {
		s.writeError(c, err)
		return
	}
	if err := tooMany("scopes", req.Scopes, maxRefBytes); err != nil {
		s.writeError(c, err)
		return
	}
	tok, secret, err := s.db.CreateToken(c, workspaceOf(c).ID, req.Name, req.Scopes)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// The secret is in this response only; linsync keeps a hash.
	c.JSON(http.StatusCreated, gin.H{"token": secret, "api_token": tok})
}

func (s *Server) handleListTokens(c *gin.Context) {
	servePage(s, c, "tokens", 50, func(p linsync.Page) ([]linsync.APIToken, string, error) {
		return s.db.TokensPage(c, workspaceOf(c).ID, p)
	})
}

func (s *Server) handleRevokeToken(c *gin.Context) {
	if err := s.db.RevokeToken(c, workspaceOf(c).ID, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) handleGetWorkspace(c *gin.Context) {
	c.JSON(http.StatusOK, workspaceOf(c))
}
