package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

// oauthStateTTL bounds how long an admin may take on Linear's consent screen.
const oauthStateTTL = 10 * time.Minute

// oauthBrowserCookie binds an authorization to the browser (or client) that started it: whoever holds the authorize
// URL holds the state, but only the starter holds this HttpOnly cookie, and the callback completes only with it. An
// admin of one workspace can therefore not have a Linear admin of another organization complete a connection into
// their workspace by sending them a link.
const oauthBrowserCookie = "linsync_oauth"

// registerAccessRoutes adds OAuth connect, webhook registration and disconnect.
func (s *Server) registerAccessRoutes(v1, ws *gin.RouterGroup) {
	admin := s.authorize(linsync.ScopeAdmin)
	// The callback carries no bearer token: the browser arrives from Linear, and the single-use state names the
	// workspace and authenticates the request.
	v1.GET("/oauth/linear/callback", s.handleOAuthCallback)
	ws.GET("/integrations/linear/oauth/start", admin, s.handleOAuthStart)
	ws.POST("/integrations/linear/oauth/start", admin, s.handleOAuthStart)
	ws.DELETE("/integrations/linear", admin, s.handleDisconnectLinear)
	ws.GET("/integrations/linear/history", admin, s.handleAccessHistory)
	ws.GET("/integrations/linear/webhooks", admin, s.handleListWebhooks)
	ws.POST("/integrations/linear/webhooks", admin, s.handleCreateWebhook)
	ws.DELETE("/integrations/linear/webhooks/:id", admin, s.handleDeleteWebhook)
	ws.POST("/integrations/linear/webhooks/:id/rotate", admin, s.handleRotateWebhook)
}

type oauthStartRequest struct {
	DefaultTeamID   string   `json:"default_team_id"`
	DefaultPriority *int     `json:"default_priority"`
	Labels          []string `json:"labels"`
}

// handleOAuthStart begins connecting by OAuth: it stores a single-use state with a PKCE verifier and sends the admin
// to Linear's consent screen (GET redirects there; POST answers the URL, for clients that open it themselves).
func (s *Server) handleOAuthStart(c *gin.Context) {
	if s.cfg.OAuth == nil {
		s.writeError(c, linsync.Errorf(linsync.ENOTIMPLEMENTED, "OAuth is not configured (LINEAR_OAUTH_CLIENT_ID)"))
		return
	}
	req, err := oauthStartInput(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ws := workspaceOf(c)
	state, nonce := linear.RandomToken(32), linear.RandomToken(32)
	verifier, challenge := linear.NewPKCE()
	expires := s.now().Add(oauthStateTTL).UTC()
	priority := 0
	if req.DefaultPriority != nil {
		priority = *req.DefaultPriority
	}
	err = s.db.CreateOAuthState(c, linsync.OAuthState{WorkspaceID: ws.ID, State: state, CodeVerifier: verifier,
		RedirectURI: s.cfg.OAuth.RedirectURL(), DefaultTeamID: req.DefaultTeamID, DefaultPriority: priority,
		DefaultLabels: req.Labels, ExpiresAt: expires, BrowserNonce: nonce})
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.setBrowserCookie(c, nonce)
	u := s.cfg.OAuth.AuthorizeURL(state, challenge)
	if c.Request.Method == http.MethodGet {
		c.Redirect(http.StatusFound, u)
		return
	}
	c.JSON(http.StatusOK, gin.H{"authorize_url": u, "expires_at": expires})
}

// oauthStartInput reads the connection defaults from a POST body (optional) or the GET query.
func oauthStartInput(c *gin.Context) (oauthStartRequest, error) {
	var req oauthStartRequest
	if c.Request.Method == http.MethodPost {
		if c.Request.ContentLength != 0 {
			if err := bindJSON(c, &req); err != nil {
				return req, err
			}
		}
	} else {
		req.DefaultTeamID = c.Query("default_team_id")
		if p := c.Query("default_priority"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return req, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_priority", Message: "default_priority must be a number"}
			}
			req.DefaultPriority = &n
		}
		for _, l := range c.QueryArray("labels") {
			req.Labels = append(req.Labels, strings.Split(l, ",")...)
		}
	}
	if err := tooLong(maxRefBytes, "default_team_id", req.DefaultTeamID); err != nil {
		return req, err
	}
	if err := tooMany("labels", req.Labels, maxNameBytes); err != nil {
		return req, err
	}
	if p := req.DefaultPriority; p != nil && (*p < 0 || *p > 4) {
		return req, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "default_priority",
			Message: "default_priority must be Linear's 0 (none), 1 (urgent), 2 (high), 3 (medium) or 4 (low)"}
	}
	return req, nil
}

// handleOAuthCallback finishes connecting by OAuth. The state is consumed first, whatever happens next, so a
// callback can never be replayed; nothing is stored unless the code exchange and the probe of Linear succeed.
func (s *Server) handleOAuthCallback(c *gin.Context) {
	if s.cfg.OAuth == nil {
		s.writeError(c, linsync.Errorf(linsync.ENOTIMPLEMENTED, "OAuth is not configured (LINEAR_OAUTH_CLIENT_ID)"))
		return
	}
	var nonce string
	if ck, err := c.Request.Cookie(oauthBrowserCookie); err == nil {
		nonce = ck.Value
	}
	st, err := s.db.ConsumeOAuthState(c, c.Query("state"), nonce)
	if err != nil {
		if linsync.ErrorCode(err) == linsync.EFORBIDDEN {
			s.log.WarnContext(c, "linear oauth callback from another browser refused")
		}
		s.writeError(c, err)
		return
	}
	s.clearBrowserCookie(c)
	if e := c.Query("error"); e != "" {
		s.recordAccess(c, linsync.AccessEvent{WorkspaceID: st.WorkspaceID, Kind: linsync.AccessConnected,
			Outcome: linsync.AccessOutcomeFailed, Detail: "Linear did not grant access: " + e})
		s.writeError(c, linsync.Errorf(linsync.EINVALID, "Linear did not grant access: %s %s", e, c.Query("error_description")))
		return
	}
	code := c.Query("code")
	if code == "" {
		s.writeError(c, &linsync.Error{Code: linsync.EINVALID, Field: "code", Message: "the callback carries no authorization code"})
		return
	}
	ws, err := s.db.FindWorkspace(c, st.WorkspaceID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c, 30*time.Second)
	defer cancel()
	tok, err := s.cfg.OAuth.Exchange(ctx, code, st.CodeVerifier)
	if err != nil {
		s.log.WarnContext(c, "linear oauth code exchange failed", "workspace_id", ws.ID, "err", err)
		s.writeError(c, oauthRefusal("Linear refused the authorization code", err))
		return
	}
	cred := linear.Credential{AccessToken: tok.AccessToken}
	probe, err := s.probeLinear(ctx, cred, st.DefaultTeamID)
	if err == nil && st.DefaultTeamID == "" && len(probe.teams) == 0 {
		err = linsync.Errorf(linsync.EINVALID, "the authorized Linear user sees no team")
	}
	if err == nil {
		err = s.refuseOrganizationElsewhere(ctx, ws, probe.orgID, probe.orgName)
	}
	if err != nil {
		s.revokeGrant(context.WithoutCancel(ctx), ws.ID, "", tok.AccessToken, tok.RefreshToken)
		s.log.WarnContext(c, "linear oauth connect refused", "workspace_id", ws.ID, "credential", cred.Redacted(), "err", err)
		s.writeError(c, err)
		return
	}
	team := probe.teamID
	if team == "" {
		team = probe.teams[0].Id // the admin named none: Linear's first team, shown in the answer and changeable by reconnecting
	}
	var expires *time.Time
	if !tok.ExpiresAt.IsZero() {
		expires = &tok.ExpiresAt
	}
	conn, err := s.db.SaveConnection(c, linsync.ConnectionInput{
		WorkspaceID: ws.ID, OrganizationID: probe.orgID, OrganizationName: probe.orgName, AuthKind: linsync.AuthOAuth,
		Credential: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: expires, OAuthScopes: tok.Scopes,
		ActorUserID: probe.viewer.Id, ActorName: probe.viewer.Name, DefaultTeam: team, Priority: st.DefaultPriority,
		Labels: st.DefaultLabels,
	})
	if err != nil {
		s.revokeGrant(context.WithoutCancel(ctx), ws.ID, "", tok.AccessToken, tok.RefreshToken)
		s.writeError(c, err)
		return
	}
	s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessConnected,
		Outcome: linsync.AccessOutcomeOK, Detail: "oauth, organization " + conn.OrganizationID + " (" + conn.OrganizationName +
			") connected to workspace " + ws.Slug})
	s.log.InfoContext(c, "linear connected", "workspace_id", ws.ID, "organization_id", conn.OrganizationID,
		"auth_kind", conn.AuthKind, "credential", conn.CredentialLast4)
	lc, err := s.linearClient(cred)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := s.connectedAnswer(ctx, ws, conn, lc)
	// Say plainly which organization was connected to which workspace: the person who consented reads it here.
	out["workspace"] = gin.H{"id": ws.ID, "slug": ws.Slug, "name": ws.Name}
	out["confirmation"] = "Linear organization " + conn.OrganizationName + " (" + conn.OrganizationID +
		") is now connected to linsync workspace " + ws.Name + " (" + ws.Slug + ")"
	c.JSON(http.StatusOK, out)
}

// refuseOrganizationElsewhere refuses to connect a Linear organization that is already connected to another
// workspace: one organization's data belongs to one tenant, and moving it takes a disconnect there first.
func (s *Server) refuseOrganizationElsewhere(ctx context.Context, ws *linsync.Workspace, orgID, orgName string) error {
	elsewhere, err := s.db.OrganizationConnectedElsewhere(ctx, orgID, ws.ID)
	if err != nil {
		return err
	}
	if elsewhere {
		s.recordAccess(ctx, linsync.AccessEvent{WorkspaceID: ws.ID, Kind: linsync.AccessConnected, Outcome: linsync.AccessOutcomeFailed,
			Detail: "oauth, organization " + orgID + " is connected to another workspace"})
		return linsync.Errorf(linsync.ECONFLICT, "Linear organization %s (%s) is already connected to another linsync workspace; "+
			"disconnect it there first", orgName, orgID)
	}
	return nil
}

// setBrowserCookie sends the binding nonce to the starter: HttpOnly (no script reads it), SameSite=Lax (sent on the
// top-level navigation back from Linear, never on a cross-site subrequest or POST), only to the callback's path,
// Secure when the callback is https, and no longer than the state lives. One cookie per browser: of two
// authorizations started at once in one browser, the later one is the one that completes.
func (s *Server) setBrowserCookie(c *gin.Context, nonce string) {
	http.SetCookie(c.Writer, s.browserCookie(nonce, int(oauthStateTTL/time.Second)))
}

// clearBrowserCookie removes the binding once the state is used.
func (s *Server) clearBrowserCookie(c *gin.Context) {
	http.SetCookie(c.Writer, s.browserCookie("", -1))
}

func (s *Server) browserCookie(value string, maxAge int) *http.Cookie {
	path := "/v1/oauth/linear/callback"
	secure := false
	if u, err := url.Parse(s.cfg.OAuth.RedirectURL()); err == nil {
		if u.Path != "" {
			path = u.Path
		}
		secure = u.Scheme == "https"
	}
	return &http.Cookie{Name: oauthBrowserCookie, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteLaxMode}
}

// connectedAnswer registers linsync's webhook for a new connection (when a public URL is configured) and builds
// the answer to a connect. A failed registration does not undo the connection: the answer says what failed and
// POST …/webhooks retries it.
func (s *Server) connectedAnswer(ctx context.Context, ws *linsync.Workspace, conn *linsync.LinearConnection, lc *linear.Client) gin.H {
	out := gin.H{"connection": viewConnection(conn)}
	s.afterConnectReconcile(ctx, ws.ID)                       // reconciliation schedule (syncstatus.go)
	out["resumed_workflows"] = s.resumePausedWork(ctx, ws.ID) // work that waited for this reconnect (reconnect.go)
	if s.cfg.PublicURL == "" {
		return out
	}
	hook, err := s.ensureManagedWebhook(ctx, ws, conn, lc)
	if err != nil {
		out["webhook_error"] = gin.H{"code": linsync.ErrorCode(err), "message": linsync.ErrorMessage(err)}
		return out
	}
	out["webhook"] = hook
	// Private teams linsync files into need webhooks of their own (team_webhooks.go).
	if sync, err := s.syncTeamWebhooks(ctx, ws, conn, lc); err != nil {
		out["team_webhooks_error"] = gin.H{"code": linsync.ErrorCode(err), "message": linsync.ErrorMessage(err)}
	} else {
		out["team_webhooks"] = sync
	}
	return out
}

// revokeGrant revokes OAuth tokens at Linear, best effort, and records the outcome.
func (s *Server) revokeGrant(ctx context.Context, workspaceID, connectionID, access, refresh string) {
	if s.cfg.OAuth == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, t := range []struct{ tok, hint string }{{refresh, "refresh_token"}, {access, "access_token"}} {
		if t.tok == "" {
			continue
		}
		ev := linsync.AccessEvent{WorkspaceID: workspaceID, ConnectionID: connectionID, Kind: linsync.AccessTokenRevoked,
			Outcome: linsync.AccessOutcomeOK, Detail: t.hint + " " + linear.Credential{AccessToken: t.tok}.Redacted()}
		if err := s.cfg.OAuth.Revoke(ctx, t.tok, t.hint); err != nil {
			ev.Outcome, ev.Detail = linsync.AccessOutcomeFailed, ev.Detail+": "+err.Error()
			s.log.WarnContext(ctx, "revoke linear oauth token failed", "workspace_id", workspaceID, "token_type", t.hint, "err", err)
		}
		s.recordAccess(ctx, ev)
	}
}

// oauthRefusal turns an OAuth endpoint error into an answer: Linear's refusal is 400, its absence 503.
func oauthRefusal(what string, err error) error {
	var oe *linear.OAuthError
	if errors.As(err, &oe) && oe.Permanent() {
		msg := oe.Code
		if oe.Description != "" {
			msg += " (" + oe.Description + ")"
		}
		return linsync.Errorf(linsync.EINVALID, "%s: %s", what, msg)
	}
	return linsync.Errorf(linsync.EUNAVAILABLE, "%s: Linear's OAuth endpoint is unavailable; retry later", what)
}

// linearFor returns a Linear client for the workspace's active connection from the one factory of Linear clients
// (linear.Clients), which refreshes an OAuth access token about to expire and marks the connection revoked when
// Linear refuses its refresh token; the errors become answers here.
func (s *Server) linearFor(ctx context.Context, workspaceID string) (*linear.Client, *linsync.LinearConnection, error) {
	lc, conn, err := s.linear.For(ctx, workspaceID)
	var refresh *linear.RefreshError
	switch {
	case err == nil:
		return lc, conn, nil
	case errors.As(err, &refresh) && refresh.Revoked:
		return nil, nil, oauthRefusal("Linear refused the refresh token; connect again", refresh.Err)
	case errors.As(err, &refresh) && linsync.ErrorCode(err) == linsync.EINTERNAL:
		return nil, nil, linsync.Errorf(linsync.EUNAVAILABLE, "refresh the Linear access token: unavailable; retry later")
	}
	return nil, conn, err
}

func (s *Server) recordAccess(ctx context.Context, e linsync.AccessEvent) {
	if err := s.db.RecordAccessEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log.WarnContext(ctx, "record access event failed", "workspace_id", e.WorkspaceID, "kind", e.Kind, "err", err)
	}
}

func (s *Server) handleAccessHistory(c *gin.Context) {
	servePage(s, c, "events", maxPageItems, func(p linsync.Page) ([]linsync.AccessEvent, string, error) {
		return s.db.AccessEventsPage(c, workspaceOf(c).ID, p)
	})
}

// afterAPIKeyConnect records a connect by API key, registers linsync's webhook and answers the connect.
func (s *Server) afterAPIKeyConnect(c *gin.Context, ws *linsync.Workspace, conn *linsync.LinearConnection, cred linear.Credential) {
	s.recordAccess(c, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessConnected,
		Outcome: linsync.AccessOutcomeOK, Detail: "api key, organization " + conn.OrganizationID})
	lc, err := s.linearClient(cred)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, s.connectedAnswer(c, ws, conn, lc))
}
