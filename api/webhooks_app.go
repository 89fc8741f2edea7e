package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/workflows"
)

// handleLinearAppWebhook is the ingress of the OAuth application's own webhook, which Linear creates for the app and
// uses for app-level events, above all "OAuthApp revoked" when an organization's admin uninstalls linsync. Its
// deliveries are signed with the application's webhook secret (LINEAR_OAUTH_WEBHOOK_SECRET), not with any
// workspace's, and name no workspace: the body's organizationId is matched to the workspaces connected to that
// organization by OAuth, and each gets the delivery as its own LinearDelivery run (the delivery id is derived per
// workspace, so a redelivery is still a duplicate). The checks are those of the workspace webhooks, in the same
// order.
func (s *Server) handleLinearAppWebhook(c *gin.Context) {
	received := s.now()
	if s.cfg.OAuthWebhookSecret == "" {
		s.reject(c, linsync.Errorf(linsync.ENOTIMPLEMENTED, "the OAuth application's webhook secret is not configured (LINEAR_OAUTH_WEBHOOK_SECRET)"))
		return
	}
	body, err := s.readBody(c)
	if err != nil {
		s.reject(c, err)
		return
	}
	if !linear.VerifySignature(body, c.GetHeader(linear.HeaderSignature), []byte(s.cfg.OAuthWebhookSecret)) {
		s.reject(c, linsync.Errorf(linsync.EUNAUTHORIZED, "invalid webhook signature"))
		return
	}
	hook, err := linear.DecodeWebhook(body)
	if err != nil {
		s.reject(c, err)
		return
	}
	if err := linear.CheckTimestamp(int64(hook.WebhookTimestamp), received, s.cfg.WebhookTolerance); err != nil {
		s.reject(c, err)
		return
	}
	deliveryID, err := uuid.Parse(c.GetHeader(linear.HeaderDelivery))
	if err != nil {
		s.reject(c, &linsync.Error{Code: linsync.EINVALID, Field: linear.HeaderDelivery,
			Message: "the Linear-Delivery header must be the delivery's UUID"})
		return
	}
	if !s.senderAllowed(c) {
		s.reject(c, linsync.Errorf(linsync.EFORBIDDEN, "sender address not allowed"))
		return
	}
	conns, err := s.db.OAuthConnectionsForOrganization(c, hook.OrganizationID)
	if err != nil {
		s.reject(c, err)
		return
	}
	if len(conns) == 0 {
		s.reject(c, linsync.Errorf(linsync.ENOTFOUND, "organization %s has no workspace connected by OAuth", hook.OrganizationID))
		return
	}
	// Each OAuth-connected workspace of the organization gets the delivery as its own, under Linear's delivery id
	// (workflow ids and content records are per workspace), through the same inbox as every webhook.
	started, duplicates := 0, 0
	for _, conn := range conns {
		in := workflows.LinearDeliveryInput{
			DeliveryID:       deliveryID.String(),
			WorkspaceID:      conn.WorkspaceID,
			OrganizationID:   hook.OrganizationID,
			WebhookID:        hook.WebhookID,
			EventType:        hook.Type,
			Action:           hook.Action,
			EntityID:         hook.EntityID(),
			KnownType:        !hook.Unknown,
			WebhookTimestamp: time.UnixMilli(int64(hook.WebhookTimestamp)).UTC(),
			ReceivedAt:       received.UTC(),
			Body:             json.RawMessage(body),
		}
		status, _, err := s.admitDelivery(c, in, body)
		switch {
		case err != nil:
			s.reject(c, err)
			return
		case status == "duplicate":
			duplicates++
		default:
			started++
		}
	}
	status := "accepted"
	if started == 0 {
		status = "duplicate"
	}
	s.metrics.webhooks.WithLabelValues(status).Inc()
	c.JSON(http.StatusOK, gin.H{"status": status, "workspaces": started + duplicates})
}
