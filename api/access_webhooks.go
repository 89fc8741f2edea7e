package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

// webhookResourceTypes are the Linear resource types linsync acts on; OAuthApp revocations come through the OAuth
// application's own webhook and need no subscription.
var webhookResourceTypes = []string{"Issue", "Comment", "IssueLabel", "Reaction", "Project", "Cycle", "IssueSLA"}

// newWebhookSecret returns a signing secret for a webhook linsync registers: 256 random bits.
func newWebhookSecret() string { return "lsw_" + linear.RandomToken(32) }

// webhookURL is where Linear posts a workspace's deliveries: by path, so matching never depends on the organization.
func (s *Server) webhookURL(ws *linsync.Workspace) string {
	return strings.TrimRight(s.cfg.PublicURL, "/") + "/webhooks/linear/" + ws.Slug
}

// ensureManagedWebhook returns the workspace's managed webhook for the connection's organization, creating it in
// Linear when there is none (a reconnect keeps the existing one).
func (s *Server) ensureManagedWebhook(ctx context.Context, ws *linsync.Workspace, conn *linsync.LinearConnection, lc *linear.Client) (*linsync.WebhookRecord, error) {
	hooks, err := s.db.ListLinearWebhooks(ctx, ws.ID)
	if err != nil {
		return nil, err
	}
	for _, h := range hooks {
		if h.Managed && h.OrganizationID == conn.OrganizationID && h.URL == s.webhookURL(ws) {
			return h, nil
		}
	}
	rec, _, err := s.createManagedWebhook(ctx, ws, conn, lc, "")
	return rec, err
}

// createManagedWebhook registers linsync's webhook in Linear with a secret linsync generates, for teamID ("" is all
// public teams), unless the workspace has one for that scope already: then that one is returned and created is
// false, since a second webhook in Linear would deliver every event twice. The database holds one managed webhook
// per scope, so of two concurrent requests one creates and the other returns its webhook. The secret is stored
// (encrypted) before Linear is asked, so the first delivery already verifies; if Linear refuses, the row goes again.
func (s *Server) createManagedWebhook(ctx context.Context, ws *linsync.Workspace, conn *linsync.LinearConnection, lc *linear.Client, teamID string) (rec *linsync.WebhookRecord, created bool, err error) {
	if s.cfg.PublicURL == "" {
		return nil, false, linsync.Errorf(linsync.ECONFLICT,
			"linsync has no public URL (LINSYNC_PUBLIC_URL), so Linear cannot reach it; create the webhook in Linear and register its secret instead")
	}
	if rec, err := s.db.FindManagedWebhook(ctx, ws.ID, conn.OrganizationID, teamID); err == nil {
		return rec, false, nil
	} else if linsync.ErrorCode(err) != linsync.ENOTFOUND {
		return nil, false, err
	}
	id := uuid.NewString()
	secret := newWebhookSecret()
	url := s.webhookURL(ws)
	rec, err = s.db.RegisterLinearWebhook(ctx, linsync.WebhookRegistration{ID: id, WorkspaceID: ws.ID,
		ConnectionID: conn.ID, OrganizationID: conn.OrganizationID, TeamID: teamID, LinearWebhookID: id, Managed: true,
		URL: url, ResourceTypes: webhookResourceTypes, Secret: secret})
	if linsync.ErrorCode(err) == linsync.ECONFLICT {
		// Another request registered the scope's webhook between the look-up and the insert.
		if existing, ferr := s.db.FindManagedWebhook(ctx, ws.ID, conn.OrganizationID, teamID); ferr == nil {
			return existing, false, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	in := linear.WebhookCreateInput{ID: id, URL: url, ResourceTypes: webhookResourceTypes, Secret: secret,
		Label: "linsync " + ws.Slug, TeamID: teamID, AllPublicTeams: teamID == ""}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := linear.WebhookCreate(cctx, lc.GQL(), in); err != nil {
		if derr := s.db.DeleteLinearWebhook(context.WithoutCancel(ctx), ws.ID, id); derr != nil {
			s.log.WarnContext(ctx, "forget unregistered webhook failed", "workspace_id", ws.ID, "webhook_id", id, "err", derr)
		}
		s.recordAccess(ctx, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessWebhookCreated,
			Outcome: linsync.AccessOutcomeFailed, Detail: linear.Classify(err).Error()})
		s.log.WarnContext(ctx, "create linear webhook failed", "workspace_id", ws.ID, "err", err)
		return nil, false, linearRefusal("create the webhook in Linear", err)
	}
	s.recordAccess(ctx, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessWebhookCreated,
		Outcome: linsync.AccessOutcomeOK, Detail: "managed webhook " + id + " → " + url})
	s.log.InfoContext(ctx, "linear webhook registered", "workspace_id", ws.ID, "webhook_id", id, "linear_webhook_id", id,
		"secret", rec.SecretLast4)
	return rec, true, nil
}

type createWebhookRequest struct {
	// Secret is Linear's signing secret, pasted by an admin who created the webhook in Linear (manual mode). Without
	// it, linsync creates the webhook in Linear itself (managed mode).
	Secret         string `json:"secret"`
	OrganizationID string `json:"organization_id"`
	TeamID         string `json:"team_id"`
	// LinearWebhookID is the webhook's id in Linear (the webhookId of its deliveries), optional in manual mode: with
	// it, ingress checks the webhook's deliveries against its secret alone.
	LinearWebhookID string `json:"linear_webhook_id"`
}

// handleCreateWebhook registers a webhook: manual mode stores the secret the admin pasted from Linear; managed mode
// (no secret) creates linsync's webhook in Linear, or answers 200 with the one the team scope already has. Either
// needs a Linear connection: it is what proves the organization a webhook may speak for.
func (s *Server) handleCreateWebhook(c *gin.Context) {
	var req createWebhookRequest
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	ws := workspaceOf(c)
	req.Secret = strings.TrimSpace(req.Secret)
	if req.Secret == "" {
		lc, conn, err := s.linearFor(c, ws.ID)
		if err == nil && req.OrganizationID != "" && req.OrganizationID != conn.OrganizationID {
			err = &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "organization_id",
				Message: "a managed webhook belongs to the connected organization " + conn.OrganizationID}
		}
		if err != nil {
			s.writeError(c, err)
			return
		}
		rec, created, err := s.createManagedWebhook(c, ws, conn, lc, req.TeamID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		status := http.StatusCreated
		if !created {
			status = http.StatusOK
		}
		c.JSON(status, gin.H{"webhook": rec})
		return
	}
	conn, err := s.db.FindConnection(c, ws.ID)
	switch {
	case linsync.ErrorCode(err) == linsync.ENOTFOUND || err == nil && (conn.Status == linsync.ConnectionDisconnected || conn.OrganizationID == ""):
		// An organization id anyone could type proves nothing: only one linsync learned from Linear by connecting
		// (key or OAuth) may have webhooks, so no workspace registers secrets for another tenant's organization.
		s.writeError(c, &linsync.Error{Code: linsync.ECONFLICT, Field: "organization_id",
			Message: "connect the workspace to Linear first: webhooks are registered only for the organization_id of its connection"})
		return
	case err != nil:
		s.writeError(c, err)
		return
	case req.OrganizationID == "":
		req.OrganizationID = conn.OrganizationID
	case req.OrganizationID != conn.OrganizationID:
		// The connection proved which organization this workspace is; a webhook may not claim another.
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "organization_id",
			Message: "organization_id must be the connected Linear organization " + conn.OrganizationID})
		return
	}
	rec, err := s.db.RegisterLinearWebhook(c, linsync.WebhookRegistration{WorkspaceID: ws.ID, ConnectionID: conn.ID,
		OrganizationID: req.OrganizationID, TeamID: req.TeamID, LinearWebhookID: strings.TrimSpace(req.LinearWebhookID),
		Secret: req.Secret})
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessWebhookCreated,
		Outcome: linsync.AccessOutcomeOK, Detail: "manual webhook " + rec.ID})
	s.log.InfoContext(c, "linear webhook registered", "workspace_id", ws.ID, "webhook_id", rec.ID, "managed", false,
		"secret", rec.SecretLast4)
	c.JSON(http.StatusCreated, gin.H{"webhook": rec})
}

// handleDeleteWebhook forgets a webhook and, when linsync created it, deletes it in Linear first. Linear being
// unavailable is a 503 and keeps the webhook, so the admin can retry.
func (s *Server) handleDeleteWebhook(c *gin.Context) {
	ws := workspaceOf(c)
	rec, err := s.db.FindLinearWebhook(c, ws.ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	if rec.Managed && rec.LinearWebhookID != "" {
		lc, _, err := s.linearFor(c, ws.ID)
		switch {
		case err == nil:
			if err := s.deleteInLinear(c, ws.ID, rec, lc); err != nil {
				s.writeError(c, err)
				return
			}
		case linsync.ErrorCode(err) == linsync.ENOTFOUND || linsync.ErrorCode(err) == linsync.ECONFLICT:
			// No usable credential: Linear keeps the webhook until an admin removes it there; say so in the history.
			s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: rec.ConnectionID, Kind: linsync.AccessWebhookDeleted,
				Outcome: linsync.AccessOutcomeFailed, Detail: "not deleted in Linear (" + linsync.ErrorMessage(err) + "): " + rec.LinearWebhookID})
		default:
			s.writeError(c, err)
			return
		}
	}
	if err := s.db.DeleteLinearWebhook(c, ws.ID, rec.ID); err != nil {
		s.writeError(c, err)
		return
	}
	s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: rec.ConnectionID, Kind: linsync.AccessWebhookDeleted,
		Outcome: linsync.AccessOutcomeOK, Detail: "webhook " + rec.ID})
	c.Status(http.StatusNoContent)
}

// deleteInLinear deletes a managed webhook in Linear; one Linear no longer has counts as deleted. A refusal is
// recorded and returned as 400, an outage as 503.
func (s *Server) deleteInLinear(ctx context.Context, workspaceID string, rec *linsync.WebhookRecord, lc *linear.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := linear.WebhookDelete(cctx, lc.GQL(), rec.LinearWebhookID)
	if err == nil || linear.ClassOf(err) == linear.ClassNotFound {
		return nil
	}
	s.recordAccess(ctx, linsync.AccessEvent{WorkspaceID: workspaceID, ConnectionID: rec.ConnectionID, Kind: linsync.AccessWebhookDeleted,
		Outcome: linsync.AccessOutcomeFailed, Detail: "delete in Linear " + rec.LinearWebhookID + ": " + linear.Classify(err).Error()})
	return linearRefusal("delete the webhook in Linear", err)
}

type rotateWebhookRequest struct {
	// Secret is the new secret of a manual webhook, rotated in Linear by the admin; a managed webhook gets one from
	// linsync.
	Secret string `json:"secret"`
}

// handleRotateWebhook replaces a webhook's signing secret; the previous one is still accepted until the grace
// window ends. A manual webhook's new secret (the admin rotated it in Linear) is current at once. A managed one
// rotates in two phases, since Linear's answer can be lost after it switched: the new secret is stored as pending
// (accepted beside the current one) and committed, then set in Linear, then promoted to current. A failure in
// between leaves both accepted, never neither, and rotating again finishes with the pending secret.
func (s *Server) handleRotateWebhook(c *gin.Context) {
	var req rotateWebhookRequest
	if c.Request.ContentLength != 0 {
		if err := bindJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
	}
	ws := workspaceOf(c)
	rec, err := s.db.FindLinearWebhook(c, ws.ID, c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	req.Secret = strings.TrimSpace(req.Secret)
	var out *linsync.WebhookRecord
	switch {
	case rec.Managed && req.Secret != "":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "secret",
			Message: "linsync generates the secrets of webhooks it manages; send no secret"})
		return
	case rec.Managed:
		out, err = s.rotateManaged(c, ws.ID, rec)
	case req.Secret == "":
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "secret",
			Message: "secret is required: rotate the secret in Linear and paste the new one"})
		return
	default:
		out, err = s.db.RotateLinearWebhookSecret(c, ws.ID, rec.ID, req.Secret, s.cfg.WebhookSecretGrace)
	}
	s.secrets.forget()
	if err != nil {
		s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: rec.ConnectionID, Kind: linsync.AccessWebhookRotated,
			Outcome: linsync.AccessOutcomeFailed, Detail: "webhook " + rec.ID + ": " + linsync.ErrorMessage(err)})
		s.writeError(c, err)
		return
	}
	s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: rec.ConnectionID, Kind: linsync.AccessWebhookRotated,
		Outcome: linsync.AccessOutcomeOK, Detail: "webhook " + rec.ID})
	s.log.InfoContext(c, "linear webhook secret rotated", "workspace_id", ws.ID, "webhook_id", rec.ID, "secret", out.SecretLast4,
		"grace", s.cfg.WebhookSecretGrace.String())
	c.JSON(http.StatusOK, gin.H{"webhook": out})
}

// rotateManaged runs a managed webhook's two-phase rotation (handleRotateWebhook).
func (s *Server) rotateManaged(ctx context.Context, workspaceID string, rec *linsync.WebhookRecord) (*linsync.WebhookRecord, error) {
	lc, _, err := s.linearFor(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	secret, err := s.db.StageWebhookSecret(ctx, workspaceID, rec.ID, newWebhookSecret())
	if err != nil {
		return nil, err
	}
	// Deliveries signed with the pending secret verify here from now on, before Linear signs with it.
	s.secrets.forget()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := linear.WebhookUpdate(cctx, lc.GQL(), rec.LinearWebhookID, linear.WebhookUpdateInput{Secret: linear.Value(secret)}); err != nil {
		return nil, linearRefusal("set the new secret in Linear (it stays accepted beside the current one; rotate again to finish)", err)
	}
	// Linear signs with the new secret: promote it even if the caller has gone meanwhile.
	out, err := s.db.PromoteWebhookSecret(context.WithoutCancel(ctx), workspaceID, rec.ID, s.cfg.WebhookSecretGrace)
	if linsync.ErrorCode(err) == linsync.ECONFLICT {
		// A concurrent rotation promoted the same pending secret first.
		return s.db.FindLinearWebhook(ctx, workspaceID, rec.ID)
	}
	return out, err
}

// handleDisconnectLinear disconnects a workspace from Linear: linsync's webhooks are deleted in Linear (best effort,
// each outcome recorded), every webhook registration is forgotten so deliveries stop verifying, OAuth tokens are
// revoked, and the connection is marked disconnected with its secrets dropped. The rows stay as history.
func (s *Server) handleDisconnectLinear(c *gin.Context) {
	ws := workspaceOf(c)
	conn, err := s.db.FindConnection(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if conn.Status == linsync.ConnectionDisconnected {
		c.JSON(http.StatusOK, gin.H{"connection": viewConnection(conn)})
		return
	}
	hooks, err := s.db.ListLinearWebhooks(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	lc, _, lerr := s.linearFor(c, ws.ID)
	for _, h := range hooks {
		if h.Managed && h.LinearWebhookID != "" {
			if lerr != nil {
				s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessWebhookDeleted,
					Outcome: linsync.AccessOutcomeFailed, Detail: "not deleted in Linear (" + linsync.ErrorMessage(lerr) + "): " + h.LinearWebhookID})
			} else if err := s.deleteInLinear(c, ws.ID, h, lc); err != nil {
				s.log.WarnContext(c, "delete linear webhook at disconnect failed", "workspace_id", ws.ID, "webhook_id", h.ID, "err", err)
			}
		}
		if err := s.db.DeleteLinearWebhook(c, ws.ID, h.ID); err != nil {
			s.writeError(c, err)
			return
		}
		s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessWebhookDeleted,
			Outcome: linsync.AccessOutcomeOK, Detail: "webhook " + h.ID})
	}
	if conn.AuthKind == linsync.AuthOAuth && lerr == nil {
		// The tokens as they are now: linearFor may just have rotated them.
		if _, creds, err := s.db.ConnectionCredentials(c, ws.ID); err == nil {
			s.revokeGrant(c, ws.ID, conn.ID, creds.Credential, creds.RefreshToken)
		}
	}
	tok := c.MustGet(ctxToken).(*linsync.APIToken)
	out, err := s.db.DisconnectConnection(c, ws.ID, "disconnected by API token "+tok.Name+" ("+tok.ID+")")
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessDisconnected,
		Outcome: linsync.AccessOutcomeOK})
	s.afterDisconnectReconcile(c, ws.ID) // reconciliation schedule (syncstatus.go)
	s.log.InfoContext(c, "linear disconnected", "workspace_id", ws.ID, "organization_id", conn.OrganizationID)
	c.JSON(http.StatusOK, gin.H{"connection": viewConnection(out)})
}
