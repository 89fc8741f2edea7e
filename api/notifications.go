package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/workflows"
)

// NotificationPoster posts one message to a notification target and answers the HTTP status, or the error that
// classifies the failure; cmd/linsync wires activities.PostNotification with the worker's outbound client, so a
// test message goes out exactly as the worker's messages do.
type NotificationPoster func(ctx context.Context, kind, url string, secret []byte, msgID string, body []byte) (int, error)

func (s *Server) registerNotificationRoutes(ws *gin.RouterGroup) {
	admin := s.authorize(linsync.ScopeAdmin)
	ws.POST("/notification-targets", admin, s.handleCreateNotificationTarget)
	ws.GET("/notification-targets", admin, s.handleListNotificationTargets)
	ws.GET("/notification-targets/:id", admin, s.handleGetNotificationTarget)
	ws.DELETE("/notification-targets/:id", admin, s.handleDeleteNotificationTarget)
	// POST …/notification-targets/{id}:test: gin's parameter runs to the next slash, so the handler reads the verb.
	ws.POST("/notification-targets/:id", admin, s.handleTestNotificationTarget)
	ws.POST("/notification-rules", admin, s.handleCreateNotificationRule)
	ws.GET("/notification-rules", admin, s.handleListNotificationRules)
	ws.GET("/notification-rules/templates", admin, s.handleNotificationTemplates)
	ws.GET("/notification-rules/:id", admin, s.handleGetNotificationRule)
	ws.PUT("/notification-rules/:id", admin, s.handleUpdateNotificationRule)
	ws.DELETE("/notification-rules/:id", admin, s.handleDeleteNotificationRule)
	// The colon is escaped so gin reads "notification-rules:simulate" as one literal segment.
	ws.POST(`/notification-rules\:simulate`, admin, s.handleSimulateNotifications)
}

type createTargetRequest struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	URL  string `json:"url"`
}

func (s *Server) handleCreateNotificationTarget(c *gin.Context) {
	var req createTargetRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	bad := func(field, msg string) {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: field, Message: msg})
	}
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "" || len(req.Name) > 100:
		bad("name", "name is 1 to 100 characters")
		return
	case req.Kind != linsync.NotifySlack && req.Kind != linsync.NotifyWebhook:
		bad("kind", "kind is slack (an incoming webhook URL) or webhook (a generic HTTPS endpoint)")
		return
	}
	if err := s.checkTargetURL(c, req.URL); err != nil {
		s.writeError(c, err)
		return
	}
	in := linsync.NotificationTargetInput{Name: req.Name, Kind: req.Kind, URL: req.URL}
	if req.Kind == linsync.NotifyWebhook {
		key := make([]byte, 24)
		if _, err := rand.Read(key); err != nil {
			s.writeError(c, fmt.Errorf("make signing secret: %w", err))
			return
		}
		in.Secret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	}
	t, err := s.db.CreateNotificationTarget(c, workspaceOf(c).ID, in)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.log.InfoContext(c, "notification target created", "workspace_id", t.WorkspaceID, "target_id", t.ID, "kind", t.Kind,
		"url", "…"+t.URLLast4)
	out := gin.H{"target": t}
	if in.Secret != "" {
		out["secret"] = in.Secret // shown once: receivers verify webhook-signature with it
	}
	c.JSON(http.StatusCreated, out)
}

// checkTargetURL refuses a URL linsync should not post to: not http(s), credentials in it, or (unless private
// addresses are allowed) plain http or a host that is, or resolves to, an address off the public internet. The
// worker's client checks the address it dials again, so a host that changes its DNS later is refused then.
func (s *Server) checkTargetURL(ctx context.Context, raw string) error {
	bad := func(msg string) error {
		return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "url", Message: msg}
	}
	u, err := url.Parse(raw)
	switch {
	case raw == "" || len(raw) > 2000:
		return bad("url is 1 to 2000 characters")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return bad("url must be an absolute https URL")
	case u.User != nil:
		return bad("url must not carry credentials")
	case u.Scheme == "http" && !s.cfg.AllowPrivateNotifications:
		return bad("url must be https")
	case s.cfg.AllowPrivateNotifications:
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if !linsync.PublicAddr(a) {
			return bad("url points at a private address; notification targets must be on the public internet")
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return bad("url points at a private address; notification targets must be on the public internet")
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil // unresolvable now: the dial-time check decides when a message is sent
	}
	for _, a := range addrs {
		if !linsync.PublicAddr(a) {
			return bad("url resolves to a private address; notification targets must be on the public internet")
		}
	}
	return nil
}

func (s *Server) handleListNotificationTargets(c *gin.Context) {
	servePage(s, c, "targets", 50, func(p linsync.Page) ([]linsync.NotificationTarget, string, error) {
		return s.db.NotificationTargetsPage(c, workspaceOf(c).ID, p)
	})
}

func (s *Server) handleGetNotificationTarget(c *gin.Context) {
	t, err := s.db.NotificationTarget(c, workspaceOf(c).ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"target": t})
}

func (s *Server) handleDeleteNotificationTarget(c *gin.Context) {
	if err := s.db.DeleteNotificationTarget(c, workspaceOf(c).ID, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleTestNotificationTarget sends a test message to a target (POST …/notification-targets/{id}:test) and
// reports what the target answered. It is sent once, not retried.
func (s *Server) handleTestNotificationTarget(c *gin.Context) {
	id, ok := strings.CutSuffix(c.Param("id"), ":test")
	if !ok {
		s.writeError(c, linsync.Errorf(linsync.ENOTFOUND, "no route for %s", c.Request.URL.Path))
		return
	}
	if s.cfg.NotificationPoster == nil {
		s.writeError(c, linsync.Errorf(linsync.ENOTIMPLEMENTED, "test messages are not configured"))
		return
	}
	ws := workspaceOf(c)
	t, u, secret, err := s.db.NotificationTargetSecrets(c, ws.ID, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	now := s.now()
	rule := linsync.NotificationRule{ID: "test", Name: "test message", Template: "Test message from linsync to " + t.Name}
	ev := linsync.NotificationEvent{DeliveryID: "test-" + now.UTC().Format("20060102T150405.000"), Type: "Test", Action: "test"}
	msg, err := linsync.RenderNotification(t.Kind, rule, ev)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c, 15*time.Second)
	defer cancel()
	code, err := s.cfg.NotificationPoster(ctx, t.Kind, u, secret, linsync.NotificationMessageID(ev.DeliveryID, rule.ID, t.ID), msg.Body)
	out := gin.H{"target_id": t.ID, "http_status": code, "status": "delivered"}
	if err != nil {
		out["status"], out["error"] = "failed", err.Error()
	}
	s.log.InfoContext(c, "notification test sent", "workspace_id", ws.ID, "target_id", t.ID, "http_status", code)
	c.JSON(http.StatusOK, out)
}

// ruleRequest is a rule as the API takes it; FromTemplate fills the match (and the name, when left out) from a
// built-in rule.
type ruleRequest struct {
	Name               string                     `json:"name"`
	Enabled            *bool                      `json:"enabled"`
	Match              *linsync.NotificationMatch `json:"match"`
	TargetIDs          []string                   `json:"target_ids"`
	Template           string                     `json:"template"`
	DigestMinutes      int                        `json:"digest_minutes"`
	NotifyOnOwnChanges bool                       `json:"notify_on_own_changes"`
	FromTemplate       string                     `json:"from_template"`
}

// rule checks the request and the targets it names, and returns the rule to save.
func (s *Server) rule(c *gin.Context, id string) (linsync.NotificationRule, error) {
	var req ruleRequest
	if err := bindJSON(c, &req); err != nil {
		return linsync.NotificationRule{}, err
	}
	r := linsync.NotificationRule{ID: id, Name: strings.TrimSpace(req.Name), Enabled: req.Enabled == nil || *req.Enabled,
		TargetIDs: req.TargetIDs, Template: req.Template, DigestMinutes: req.DigestMinutes, NotifyOnOwnChanges: req.NotifyOnOwnChanges}
	if req.Match != nil {
		r.Match = *req.Match
	}
	if req.FromTemplate != "" {
		t, ok := linsync.FindNotificationTemplate(req.FromTemplate)
		if !ok {
			names := []string{}
			for _, t := range linsync.NotificationTemplates() {
				names = append(names, t.Name)
			}
			return r, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "from_template",
				Message: "from_template must be one of " + strings.Join(names, ", ")}
		}
		if req.Match != nil {
			return r, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "match", Message: "give match or from_template, not both"}
		}
		r.Match = t.Match
		if r.Name == "" {
			r.Name = t.Name
		}
	}
	if err := linsync.CheckNotificationRule(r); err != nil {
		return r, err
	}
	missing, err := s.db.MissingNotificationTargets(c, workspaceOf(c).ID, r.TargetIDs)
	if err != nil {
		return r, err
	}
	if len(missing) > 0 {
		return r, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "target_ids",
			Message: "no target " + strings.Join(missing, ", ") + " in this workspace"}
	}
	return r, nil
}

func (s *Server) handleCreateNotificationRule(c *gin.Context) {
	r, err := s.rule(c, "")
	if err != nil {
		s.writeError(c, err)
		return
	}
	saved, err := s.db.SaveNotificationRule(c, workspaceOf(c).ID, r)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"rule": saved})
}

func (s *Server) handleUpdateNotificationRule(c *gin.Context) {
	if _, err := s.db.NotificationRule(c, workspaceOf(c).ID, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	r, err := s.rule(c, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	saved, err := s.db.SaveNotificationRule(c, workspaceOf(c).ID, r)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rule": saved})
}

func (s *Server) handleListNotificationRules(c *gin.Context) {
	servePage(s, c, "rules", 50, func(p linsync.Page) ([]linsync.NotificationRule, string, error) {
		return s.db.NotificationRulesPage(c, workspaceOf(c).ID, p)
	})
}

func (s *Server) handleGetNotificationRule(c *gin.Context) {
	r, err := s.db.NotificationRule(c, workspaceOf(c).ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rule": r})
}

func (s *Server) handleDeleteNotificationRule(c *gin.Context) {
	if err := s.db.DeleteNotificationRule(c, workspaceOf(c).ID, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) handleNotificationTemplates(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"templates": linsync.NotificationTemplates()})
}

// simulatedMessage is one message a simulation would send.
type simulatedMessage struct {
	TargetID   string          `json:"target_id"`
	TargetName string          `json:"target_name"`
	TargetKind string          `json:"target_kind"`
	Text       string          `json:"text"`
	Body       json.RawMessage `json:"body"`
}

type simulatedRule struct {
	RuleID        string             `json:"rule_id"`
	RuleName      string             `json:"rule_name"`
	DigestMinutes int                `json:"digest_minutes,omitempty"`
	Messages      []simulatedMessage `json:"messages"`
}

// handleSimulateNotifications answers which of the workspace's enabled rules fire for a delivery (pasted, or a
// recorded one by id) and the messages each would send, rendered by the code that sends them. Nothing is sent.
func (s *Server) handleSimulateNotifications(c *gin.Context) {
	var req struct {
		Delivery   json.RawMessage `json:"delivery"`
		DeliveryID string          `json:"delivery_id"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	ws := workspaceOf(c)
	body, deliveryID := []byte(req.Delivery), "simulated"
	switch {
	case len(req.Delivery) > 0 && req.DeliveryID != "":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "delivery_id", Message: "give delivery or delivery_id, not both"})
		return
	case req.DeliveryID != "":
		var err error
		if body, err = s.recordedDelivery(c, ws.ID, req.DeliveryID); err != nil {
			s.writeError(c, err)
			return
		}
		deliveryID = req.DeliveryID
	case len(req.Delivery) == 0 || string(req.Delivery) == "null":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "delivery",
			Message: "delivery (a Linear webhook body) or delivery_id (a recorded delivery) is required"})
		return
	}
	w, err := linear.DecodeWebhook(body)
	if err != nil {
		var e *linsync.Error
		if errors.As(err, &e) {
			e = &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: strings.TrimSuffix("delivery."+e.Field, "."), Message: e.Message}
			err = e
		}
		s.writeError(c, err)
		return
	}
	own := ""
	if conn, err := s.db.FindConnection(c, ws.ID); err == nil {
		own = conn.ActorUserID
	} else if linsync.ErrorCode(err) != linsync.ENOTFOUND {
		s.writeError(c, err)
		return
	}
	ev := linear.NotificationEvent(w, deliveryID, own)
	rules, err := s.db.EnabledNotificationRules(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	fired := []simulatedRule{}
	for _, r := range rules {
		if !linsync.MatchNotification(r, ev) {
			continue
		}
		sr := simulatedRule{RuleID: r.ID, RuleName: r.Name, DigestMinutes: r.DigestMinutes, Messages: []simulatedMessage{}}
		for _, tid := range r.TargetIDs {
			t, err := s.db.NotificationTarget(c, ws.ID, tid)
			if linsync.ErrorCode(err) == linsync.ENOTFOUND {
				continue
			}
			if err != nil {
				s.writeError(c, err)
				return
			}
			msg, err := linsync.RenderNotification(t.Kind, r, ev)
			if r.DigestMinutes > 0 {
				msg, err = linsync.RenderNotificationDigest(t.Kind, r, "simulated", []linsync.NotificationEvent{ev})
			}
			if err != nil {
				s.writeError(c, err)
				return
			}
			sr.Messages = append(sr.Messages, simulatedMessage{TargetID: t.ID, TargetName: t.Name, TargetKind: t.Kind,
				Text: msg.Text, Body: msg.Body})
		}
		fired = append(fired, sr)
	}
	c.JSON(http.StatusOK, gin.H{"event": ev, "rules": fired, "rules_evaluated": len(rules)})
}

// recordedDelivery reads a recorded delivery's body back from its workflow's input in Temporal (linsync keeps no
// copy of Linear's bodies), opened by the payload codec.
func (s *Server) recordedDelivery(c *gin.Context, workspaceID, deliveryID string) ([]byte, error) {
	notFound := &linsync.Error{Code: linsync.ENOTFOUND, Field: "delivery_id", Message: "no recorded delivery " + deliveryID}
	if len(deliveryID) > 100 {
		return nil, notFound
	}
	it := s.temporal.GetWorkflowHistory(c, workflows.LinearDeliveryWorkflowID(workspaceID, deliveryID), "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, notFound
	}
	first, err := it.Next()
	if err != nil || first.GetWorkflowExecutionStartedEventAttributes() == nil {
		return nil, notFound
	}
	dc := converter.GetDefaultDataConverter()
	if s.cfg.Codec != nil {
		dc = converter.NewCodecDataConverter(dc, s.cfg.Codec)
	}
	var in workflows.LinearDeliveryInput
	if err := dc.FromPayloads(first.GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
		return nil, fmt.Errorf("decode input of delivery %s: %w", deliveryID, err)
	}
	return in.Body, nil
}
