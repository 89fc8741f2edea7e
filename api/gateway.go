package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"go.temporal.io/sdk/temporal"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/postgres"
	"github.com/linsync/linsync/workflows"
)

// The agent gateway (DESIGN C7): agents send the GraphQL they would send Linear to
// POST /v1/workspaces/{ws}/proxy/linear/graphql with an agent key; linsync classifies every root field of the
// operation from the parsed document, applies the key's policy, and forwards an allowed request with the
// workspace's credential, holds one that needs approval in a GatewayApproval workflow, or refuses it. Every call is
// audited. The admin routes are in gateway_admin.go.

const (
	ctxAgentKey = "linsync.agent_key"
	// maxGatewayBody bounds an agent's request, as Linear bounds its own.
	maxGatewayBody = 1 << 20
	// defaultGatewayWait is how long Prefer: wait=N may hold an agent's request at most, unless configured.
	defaultGatewayWait = 60 * time.Second
	// defaultGatewayReserve is the share of every Linear rate-limit window agents may not spend, unless configured.
	defaultGatewayReserve = 0.2
)

var (
	agentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$`)
	preferWait     = regexp.MustCompile(`(?i)(?:^|[;,\s])wait\s*=\s*(\d+)`)
)

// gateway holds what the gateway's handlers share: Linear's schema, parsed once, on first use.
type gateway struct {
	once   sync.Once
	schema *ast.Schema
	err    error
}

func (g *gateway) linearSchema() (*ast.Schema, error) {
	g.once.Do(func() { g.schema, g.err = linear.LoadSchema("") })
	return g.schema, g.err
}

func (s *Server) registerGatewayRoutes(ws *gin.RouterGroup) {
	ws.POST("/proxy/linear/graphql", s.authorizeAgent, s.handleProxy)
	ws.GET("/proxy/linear/approvals/:id", s.authorizeAgent, s.handleAgentApproval)
	s.registerGatewayAdminRoutes(ws)
}

// authorizeAgent requires a live agent key of the workspace in the path. Like every /v1 route, a key or token of
// another workspace gets 404; an API token of this workspace gets 403, since the proxy acts only for agents.
func (s *Server) authorizeAgent(c *gin.Context) {
	secret := bearer(c)
	var ws *linsync.Workspace
	var key *linsync.AgentKey
	var err error
	if strings.HasPrefix(secret, postgres.AgentKeyPrefix) {
		key, ws, err = s.db.AuthenticateAgentKey(c, secret)
	} else {
		_, ws, err = s.db.Authenticate(c, secret)
	}
	if err != nil {
		if linsync.ErrorCode(err) == linsync.EINTERNAL {
			err = linsync.Errorf(linsync.EUNAVAILABLE, "key store unavailable; retry later")
		}
		s.writeError(c, err)
		return
	}
	if p := c.Param("ws"); p != ws.ID && p != ws.Slug {
		s.writeError(c, linsync.Errorf(linsync.ENOTFOUND, "workspace not found"))
		return
	}
	if key == nil {
		s.writeError(c, linsync.Errorf(linsync.EFORBIDDEN, "the gateway takes an agent key (agk_…), not an API token; an admin creates one with POST /v1/workspaces/{ws}/gateway/agent-keys"))
		return
	}
	c.Set(ctxWorkspace, ws)
	c.Set(ctxAgentKey, key)
	c.Next()
}

// graphQLError answers as Linear answers a refused request: {"errors":[{"message", "extensions":{…}}]}, so an agent
// written against Linear understands it.
func graphQLError(c *gin.Context, status int, code, message string, extra map[string]any) {
	ext := map[string]any{"code": code, "statusCode": status, "userError": status < 500,
		"userPresentableMessage": message, "type": map[int]string{400: "graphql error", 403: "forbidden",
			429: "ratelimited", 413: "invalid input"}[status]}
	if ext["type"] == "" {
		ext["type"] = "internal error"
	}
	for k, v := range extra {
		ext[k] = v
	}
	c.AbortWithStatusJSON(status, gin.H{"errors": []gin.H{{"message": message, "extensions": ext}}})
}

// proxyCall is one agent call as it is audited.
type proxyCall struct {
	start time.Time
	key   *linsync.AgentKey
	ws    *linsync.Workspace
	agent string
	op    *linear.Operation
	entry linsync.GatewayAuditEntry
}

func (s *Server) newProxyCall(c *gin.Context) *proxyCall {
	key := c.MustGet(ctxAgentKey).(*linsync.AgentKey)
	ws := workspaceOf(c)
	p := &proxyCall{start: time.Now(), key: key, ws: ws, agent: c.GetHeader("X-Agent-Id")}
	p.entry = linsync.GatewayAuditEntry{WorkspaceID: ws.ID, AgentKeyID: key.ID, AgentKeyName: key.Name, AgentID: p.agent}
	return p
}

func (p *proxyCall) classified(op *linear.Operation) {
	p.op = op
	p.entry.OperationName, p.entry.OperationType, p.entry.NameMismatch = op.Name, op.Type, op.NameMismatch
	p.entry.Actions, p.entry.Risk, p.entry.Complexity = linsync.ActionNames(op.Actions), op.Risk, op.Complexity
	p.entry.RequestHash, p.entry.VariableNames = op.Hash, op.VariableNames
}

// audit records the call's decision, and counts it. The call's answer does not wait on a failed write to be
// correct, but every call is written before it is answered.
func (s *Server) audit(c *gin.Context, p *proxyCall, decision, reason string) {
	p.entry.Decision, p.entry.Reason = decision, reason
	durable := !s.cfg.GatewayAuditAsync || decision != linsync.DecisionAllowed
	if _, err := s.db.AppendGatewayAudit(context.WithoutCancel(c.Request.Context()), p.entry, durable); err != nil {
		s.log.ErrorContext(c, "gateway audit write failed", "workspace_id", p.ws.ID, "agent_key_id", p.key.ID, "err", err)
	}
	actions := p.entry.Actions
	if len(actions) == 0 {
		actions = []string{"none"}
	}
	risk := p.entry.Risk
	if risk == "" {
		risk = "none"
	}
	for _, a := range actions {
		s.metrics.gatewayRequests.WithLabelValues(a, risk, decision).Inc()
	}
}

// handleProxy is an agent's GraphQL request.
func (s *Server) handleProxy(c *gin.Context) {
	p := s.newProxyCall(c)
	if !agentIDPattern.MatchString(p.agent) {
		p.entry.AgentID = ""
		s.audit(c, p, linsync.DecisionRefused, "missing or malformed X-Agent-Id")
		graphQLError(c, http.StatusBadRequest, "INVALID_INPUT", "X-Agent-Id must name the agent: 1-128 letters, digits and ._:@/-", nil)
		return
	}
	req, err := readGatewayRequest(c)
	if err != nil {
		var oe *linear.OperationError
		status, code := http.StatusBadRequest, "GRAPHQL_PARSE_FAILED"
		if errors.As(err, &oe) {
			code = oe.Code
		}
		if linsync.ErrorCode(err) == linsync.ETOOLARGE {
			status, code = http.StatusRequestEntityTooLarge, "INVALID_INPUT"
		}
		s.audit(c, p, linsync.DecisionRefused, errorText(err))
		graphQLError(c, status, code, errorText(err), nil)
		return
	}
	schema, err := s.gateway.linearSchema()
	if err != nil {
		s.writeError(c, err)
		return
	}
	op, err := linear.ClassifyOperation(schema, req)
	if err != nil {
		var oe *linear.OperationError
		errors.As(err, &oe)
		s.audit(c, p, linsync.DecisionRefused, oe.Message)
		graphQLError(c, http.StatusBadRequest, oe.Code, oe.Message, nil)
		return
	}
	p.classified(op)
	effect, reason := p.key.Policy.Decide(op.Actions)
	switch effect {
	case linsync.EffectDeny:
		s.audit(c, p, linsync.DecisionDenied, reason)
		graphQLError(c, http.StatusForbidden, "FORBIDDEN", "the agent key's policy denies this request: "+reason,
			map[string]any{"linsync": gin.H{"decision": linsync.DecisionDenied, "actions": op.Actions}})
	case linsync.EffectRequireApproval:
		s.holdForApproval(c, p, req, reason)
	default:
		s.forward(c, p, req, reason)
	}
}

// readGatewayRequest reads one GraphQL request: a JSON object with query, variables and operationName. A batch
// (a JSON array) is refused: each operation is classified, decided and audited on its own.
func readGatewayRequest(c *gin.Context) (linsync.GatewayRequest, error) {
	var req linsync.GatewayRequest
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxGatewayBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return req, linsync.Errorf(linsync.ETOOLARGE, "the request exceeds 1 MiB")
		}
		return req, &linear.OperationError{Code: "GRAPHQL_PARSE_FAILED", Message: "read the request: " + err.Error()}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return req, &linear.OperationError{Code: "GRAPHQL_VALIDATION_FAILED",
			Message: "batched requests are not supported: send one operation per request, so each is classified and audited"}
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return req, &linear.OperationError{Code: "GRAPHQL_PARSE_FAILED", Message: "the body is not a GraphQL request (a JSON object with query, variables, operationName)"}
	}
	return req, nil
}

func errorText(err error) string {
	var oe *linear.OperationError
	if errors.As(err, &oe) {
		return oe.Message
	}
	return linsync.ErrorMessage(err)
}

// forward sends an allowed request to Linear with the workspace's credential, within the agents' share of the
// rate budget, and answers with Linear's status, body and rate-limit headers.
func (s *Server) forward(c *gin.Context, p *proxyCall, req linsync.GatewayRequest, reason string) {
	lc, conn, err := s.linear.For(c, p.ws.ID)
	if err != nil {
		msg := "the workspace has no usable Linear connection"
		if conn != nil {
			msg = fmt.Sprintf("the workspace's Linear connection is %s", conn.Status)
		}
		s.audit(c, p, linsync.DecisionRefused, msg)
		graphQLError(c, http.StatusServiceUnavailable, "LINEAR_UNAVAILABLE", msg, nil)
		return
	}
	body, err := json.Marshal(req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	fw, err := lc.Forward(c.Request.Context(), "gateway "+p.op.Name, body, linear.ForwardOptions{Reserve: s.cfg.GatewayReserve,
		MaxResponseBytes: s.cfg.GatewayMaxResponseBytes, Complexity: p.op.Complexity})
	var se *linear.SendError
	switch {
	case errors.As(err, &se) && se.Err.Class == linear.ClassRateLimited && !se.Sent:
		wait := max(time.Until(se.Err.RetryAt), time.Second)
		s.audit(c, p, linsync.DecisionRefused, "the agents' share of Linear's rate limit is spent")
		c.Header("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		graphQLError(c, http.StatusTooManyRequests, "RATELIMITED", fmt.Sprintf("Rate limit exceeded for agents: linsync keeps %.0f%% of the workspace's Linear rate limit for its own work; retry after %s",
			s.cfg.GatewayReserve*100, se.Err.RetryAt.UTC().Format(time.RFC3339)), nil)
		return
	case errors.As(err, &se) && !se.Sent:
		s.audit(c, p, linsync.DecisionRefused, "not sent: "+string(se.Err.Class))
		graphQLError(c, http.StatusServiceUnavailable, "LINEAR_UNAVAILABLE", "Linear could not be reached; nothing was sent", nil)
		return
	case err != nil:
		p.entry.LatencyMS = time.Since(p.start).Milliseconds()
		s.audit(c, p, linsync.DecisionOutcomeUnknown, "sent, and no usable answer came back: "+string(linear.ClassOf(err)))
		graphQLError(c, http.StatusBadGateway, "LINEAR_NO_ANSWER", "the request was sent to Linear and no usable answer came back ("+string(linear.ClassOf(err))+"); check before sending it again", nil)
		return
	}
	p.entry.LinearStatus, p.entry.LatencyMS = fw.Status, fw.Latency.Milliseconds()
	s.audit(c, p, linsync.DecisionAllowed, reason)
	s.metrics.gatewayOverhead.Observe((time.Since(p.start) - fw.Latency).Seconds())
	writeForwarded(c, fw.Status, fw.Header, fw.Body)
}

func writeForwarded(c *gin.Context, status int, header http.Header, body []byte) {
	for k, v := range header {
		c.Writer.Header()[k] = v
	}
	ct := header.Get("Content-Type")
	if ct == "" {
		ct = "application/json; charset=utf-8"
	}
	c.Data(status, ct, body)
}

// holdForApproval stores the request sealed, starts the workflow that holds it, and answers 202 with the approval
// and its status URL, or, when the agent asks to wait (Prefer: wait=N), the outcome if it comes in time.
func (s *Server) holdForApproval(c *gin.Context, p *proxyCall, req linsync.GatewayRequest, reason string) {
	settings, err := s.db.GatewaySettings(c, p.ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	id := uuid.NewString()
	timeout := time.Duration(settings.ApprovalTimeoutSeconds) * time.Second
	op := p.op
	a := &linsync.GatewayApproval{ID: id, WorkspaceID: p.ws.ID, AgentKeyID: p.key.ID, AgentKeyName: p.key.Name,
		AgentID: p.agent, OperationName: op.Name, OperationType: op.Type, NameMismatch: op.NameMismatch,
		Actions: op.Actions, Risk: op.Risk, Complexity: op.Complexity, VariableNames: op.VariableNames,
		RequestHash: op.Hash, RequiredApprovals: settings.RequiredApprovals(op.Risk),
		WorkflowID: workflows.GatewayApprovalWorkflowID(p.ws.ID, id), ExpiresAt: time.Now().Add(timeout)}
	if _, err := s.db.CreateApproval(c, a, req); err != nil {
		s.writeError(c, err)
		return
	}
	s.metrics.gatewayRequests.WithLabelValues(firstOr(p.entry.Actions, "none"), op.Risk, linsync.DecisionApprovalRequired).Inc()
	ctx, cancel := context.WithTimeout(c, s.cfg.StartTimeout)
	_, err = s.temporal.ExecuteWorkflow(ctx, workflows.StartOnce(a.WorkflowID, s.cfg.TaskQueue), workflows.GatewayApproval,
		workflows.GatewayApprovalInput{WorkspaceID: p.ws.ID, ApprovalID: id, ExpiresIn: timeout,
			LinearMaxAttempts: s.cfg.LinearMaxAttempts, ForwardTimeout: s.cfg.GatewayForwardTimeout})
	cancel()
	if err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		s.log.WarnContext(c, "start gateway approval failed", "workspace_id", p.ws.ID, "approval_id", id, "err", err)
		_, _ = s.db.FailApproval(context.WithoutCancel(c.Request.Context()), p.ws.ID, id, "the approval workflow could not be started")
		graphQLError(c, http.StatusServiceUnavailable, "LINSYNC_UNAVAILABLE", "the request needs approval and linsync cannot hold it now; nothing was sent, retry later", nil)
		return
	}
	if wait := s.preferWait(c); wait > 0 {
		c.Header("Preference-Applied", fmt.Sprintf("wait=%d", int(wait/time.Second)))
		wctx, cancel := context.WithTimeout(c, wait)
		_ = s.temporal.GetWorkflow(wctx, a.WorkflowID, "").Get(wctx, nil)
		cancel()
		got, answer, err := s.db.TakeApprovalResponse(c, p.ws.ID, p.key.ID, id)
		if err == nil && linsync.ApprovalFinal(got.Status) {
			s.answerFinal(c, got, answer)
			return
		}
	}
	url := statusURL(p.ws, id)
	c.Header("Location", url)
	c.JSON(http.StatusAccepted, gin.H{"approval_id": id, "status": linsync.ApprovalPending, "status_url": url,
		"expires_at": a.ExpiresAt, "actions": op.Actions, "risk": op.Risk, "required_approvals": a.RequiredApprovals,
		"request_hash": op.Hash, "reason": reason})
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

func statusURL(ws *linsync.Workspace, id string) string {
	return "/v1/workspaces/" + ws.Slug + "/proxy/linear/approvals/" + id
}

// preferWait is the wait the agent asked for with Prefer: wait=N, bounded by the configured maximum.
func (s *Server) preferWait(c *gin.Context) time.Duration {
	m := preferWait.FindStringSubmatch(c.GetHeader("Prefer"))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, s.cfg.GatewayMaxWait)
}

// answerFinal answers a waiting agent with the outcome of its held request: Linear's own answer once forwarded, an
// error in Linear's shape otherwise.
func (s *Server) answerFinal(c *gin.Context, a *linsync.GatewayApproval, answer []byte) {
	c.Header("X-Linsync-Approval-Id", a.ID)
	switch a.Status {
	case linsync.ApprovalForwarded:
		if answer == nil {
			s.writeError(c, &linsync.Error{Code: linsync.EGONE, Message: "Linear's answer was already fetched"})
			return
		}
		writeForwarded(c, a.LinearStatus, nil, answer)
	case linsync.ApprovalDenied, linsync.ApprovalExpired:
		graphQLError(c, http.StatusForbidden, "FORBIDDEN", fmt.Sprintf("the request was %s: %s", a.Status, a.Reason),
			map[string]any{"linsync": gin.H{"approval_id": a.ID, "status": a.Status}})
	default:
		graphQLError(c, http.StatusBadGateway, strings.ToUpper(a.Status), a.Reason,
			map[string]any{"linsync": gin.H{"approval_id": a.ID, "status": a.Status}})
	}
}

// handleAgentApproval is the status URL of a held request, for the agent key that sent it: the status, and once
// forwarded, Linear's answer, given once.
func (s *Server) handleAgentApproval(c *gin.Context) {
	key := c.MustGet(ctxAgentKey).(*linsync.AgentKey)
	a, answer, err := s.db.TakeApprovalResponse(c, workspaceOf(c).ID, key.ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	if a.Status == linsync.ApprovalForwarded && answer == nil {
		s.writeError(c, &linsync.Error{Code: linsync.EGONE, Message: "Linear's answer to this request was already fetched; it is given once"})
		return
	}
	out := gin.H{"approval_id": a.ID, "status": a.Status, "actions": a.Actions, "risk": a.Risk,
		"expires_at": a.ExpiresAt, "required_approvals": a.RequiredApprovals, "approvals": len(a.Approvers)}
	if a.Reason != "" {
		out["reason"] = a.Reason
	}
	if answer != nil {
		out["linear_status"] = a.LinearStatus
		out["response"] = rawJSON(answer)
	}
	c.JSON(http.StatusOK, out)
}

// rawJSON embeds Linear's answer as JSON when it is JSON, else as a string.
func rawJSON(b []byte) any {
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	return string(b)
}
