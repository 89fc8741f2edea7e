package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/workflows"
)

// The gateway's admin routes: agent keys and their policies, the workspace's approval settings, the requests held
// for approval (approve, deny), and the audit trail with its verification.
func (s *Server) registerGatewayAdminRoutes(ws *gin.RouterGroup) {
	admin := s.authorize(linsync.ScopeAdmin)
	ws.POST("/gateway/agent-keys", admin, s.handleCreateAgentKey)
	ws.GET("/gateway/agent-keys", admin, s.handleListAgentKeys)
	ws.DELETE("/gateway/agent-keys/:id", admin, s.handleRevokeAgentKey)
	ws.PUT("/gateway/agent-keys/:id/policy", admin, s.handleSetAgentPolicy)
	ws.GET("/gateway/settings", admin, s.handleGetGatewaySettings)
	ws.PUT("/gateway/settings", admin, s.handlePutGatewaySettings)
	ws.GET("/gateway/approvals", admin, s.handleListApprovals)
	ws.GET("/gateway/approvals/:id", admin, s.handleGetApproval)
	ws.POST("/gateway/approvals/:id/approve", admin, s.handleApprove)
	ws.POST("/gateway/approvals/:id/deny", admin, s.handleDeny)
	ws.GET("/gateway/audit", admin, s.handleListGatewayAudit)
	// The colon is escaped so gin reads "audit:verify" as one literal segment.
	ws.GET(`/gateway/audit\:verify`, admin, s.handleVerifyGatewayAudit)
}

type createAgentKeyRequest struct {
	Name   string               `json:"name"`
	Policy *linsync.AgentPolicy `json:"policy"`
}

func (s *Server) handleCreateAgentKey(c *gin.Context) {
	var req createAgentKeyRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	var policy linsync.AgentPolicy
	if req.Policy != nil {
		policy = *req.Policy
	}
	k, secret, err := s.db.CreateAgentKey(c, workspaceOf(c).ID, req.Name, policy)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// The key is in this response only; linsync keeps a hash.
	c.JSON(http.StatusCreated, gin.H{"key": secret, "agent_key": k})
}

func (s *Server) handleListAgentKeys(c *gin.Context) {
	keys, err := s.db.ListAgentKeys(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"agent_keys": keys})
}

func (s *Server) handleRevokeAgentKey(c *gin.Context) {
	if err := s.db.RevokeAgentKey(c, workspaceOf(c).ID, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) handleSetAgentPolicy(c *gin.Context) {
	var p linsync.AgentPolicy
	if err := bindJSON(c, &p); err != nil {
		s.writeError(c, err)
		return
	}
	k, err := s.db.SetAgentKeyPolicy(c, workspaceOf(c).ID, c.Param("id"), p)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, k)
}

func (s *Server) handleGetGatewaySettings(c *gin.Context) {
	st, err := s.db.GatewaySettings(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) handlePutGatewaySettings(c *gin.Context) {
	st, err := s.db.GatewaySettings(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// Fields left out keep their values.
	if err := bindJSON(c, &st); err != nil {
		s.writeError(c, err)
		return
	}
	if err := s.db.PutGatewaySettings(c, workspaceOf(c).ID, st); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func pageLimit(c *gin.Context) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > postgres.MaxAuditPage {
		return 0, &linsync.Error{Code: linsync.EINVALID, Field: "limit", Message: "limit must be 1-200"}
	}
	return n, nil
}

func (s *Server) handleListApprovals(c *gin.Context) {
	limit, err := pageLimit(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	as, err := s.db.ListApprovals(c, workspaceOf(c).ID, c.Query("status"), c.Query("cursor"), limit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	next := ""
	if len(as) == limit {
		next = as[len(as)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"approvals": as, "next_cursor": next})
}

// approvalView is a held request as its approver sees it: its classification, a readable summary of each root
// field with its arguments, and the request itself, so the approver knows exactly what request_hash approves.
type approvalView struct {
	*linsync.GatewayApproval
	Summary string                 `json:"summary"`
	Request linsync.GatewayRequest `json:"request"`
}

func (s *Server) approvalView(ctx context.Context, a *linsync.GatewayApproval) (*approvalView, error) {
	req, err := s.db.ApprovalRequest(ctx, a.WorkspaceID, a.ID)
	if err != nil {
		return nil, err
	}
	v := &approvalView{GatewayApproval: a, Request: req}
	if schema, err := s.gateway.linearSchema(); err == nil {
		if op, err := linear.ClassifyOperation(schema, req); err == nil {
			v.Summary = op.Summary
		}
	}
	return v, nil
}

func (s *Server) handleGetApproval(c *gin.Context) {
	a, err := s.db.FindApproval(c, workspaceOf(c).ID, c.Param("id"))
	if err == nil {
		var v *approvalView
		if v, err = s.approvalView(c, a); err == nil {
			c.JSON(http.StatusOK, v)
			return
		}
	}
	s.writeError(c, err)
}

func approverOf(c *gin.Context) linsync.Approver {
	tok := c.MustGet(ctxToken).(*linsync.APIToken)
	return linsync.Approver{TokenID: tok.ID, TokenName: tok.Name}
}

type approveRequest struct {
	RequestHash string `json:"request_hash"`
}

func (s *Server) handleApprove(c *gin.Context) {
	var req approveRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.RequestHash == "" {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "request_hash",
			Message: "request_hash is required: the hash of the request you approve, as GET …/gateway/approvals/{id} shows it"})
		return
	}
	a, err := s.db.Approve(c, workspaceOf(c).ID, c.Param("id"), req.RequestHash, approverOf(c))
	s.decided(c, a, err)
}

type denyRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) handleDeny(c *gin.Context) {
	var req denyRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Reason == "" {
		req.Reason = "no reason given"
	}
	a, err := s.db.Deny(c, workspaceOf(c).ID, c.Param("id"), req.Reason, approverOf(c))
	s.decided(c, a, err)
}

// decided tells the request's workflow that a decision was recorded. The decision is already durable: if the
// signal is lost, the workflow finds it when the request's time is up.
func (s *Server) decided(c *gin.Context, a *linsync.GatewayApproval, err error) {
	if err != nil {
		s.writeError(c, err)
		return
	}
	if a.Status != linsync.ApprovalPending {
		ctx, cancel := context.WithTimeout(c, s.cfg.StartTimeout)
		if err := s.temporal.SignalWorkflow(ctx, a.WorkflowID, "", workflows.GatewayDecisionSignal, nil); err != nil {
			s.log.WarnContext(c, "signal gateway approval failed; its run reads the decision when it starts, or at expiry", "approval_id", a.ID, "err", err)
		}
		cancel()
	}
	c.JSON(http.StatusOK, a)
}

func (s *Server) handleListGatewayAudit(c *gin.Context) {
	f := linsync.GatewayAuditFilter{WorkspaceID: workspaceOf(c).ID, AgentKeyID: c.Query("agent_key_id"),
		AgentID: c.Query("agent_id"), Decision: c.Query("decision"), Action: c.Query("action"), Risk: c.Query("risk")}
	var err error
	if f.Limit, err = pageLimit(c); err != nil {
		s.writeError(c, err)
		return
	}
	if v := c.Query("cursor"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before < 1 {
			s.writeError(c, &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API gave"})
			return
		}
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.Query(name); v != "" {
			if *dst, err = time.Parse(time.RFC3339, v); err != nil {
				s.writeError(c, &linsync.Error{Code: linsync.EINVALID, Field: name, Message: name + " must be an RFC 3339 time"})
				return
			}
		}
	}
	entries, err := s.db.ListGatewayAudit(c, f)
	if err != nil {
		s.writeError(c, err)
		return
	}
	next := ""
	if len(entries) == f.Limit && entries[len(entries)-1].Seq > 1 {
		next = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	c.JSON(http.StatusOK, gin.H{"entries": entries, "next_cursor": next})
}

func (s *Server) handleVerifyGatewayAudit(c *gin.Context) {
	v, err := s.db.VerifyGatewayAudit(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}
