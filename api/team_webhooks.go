package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

// Linear's webhook "for all public teams" leaves private teams out: a question or event filed into a private team
// would never come back as a webhook. So linsync keeps one team-scoped webhook for every private team it files into
// (the default team, which questions and unrouted events use, and every routing rule's team), created and deleted as
// the connection's defaults and the routing rules change.

// filingTeams returns the ids of the Linear teams linsync files into for the workspace: the default team, every
// routing rule's team, and the team of every linked question (a question may name its own).
func (s *Server) filingTeams(ctx context.Context, workspaceID string, conn *linsync.LinearConnection) ([]string, error) {
	teams := []string{}
	add := func(t string) {
		if t != "" && !slices.Contains(teams, t) {
			teams = append(teams, t)
		}
	}
	add(conn.DefaultTeamID)
	rules, _, err := s.db.RoutingRules(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		add(r.TeamID)
	}
	qteams, err := s.db.QuestionTeams(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	for _, t := range qteams {
		add(t)
	}
	return teams, nil
}

// afterQuestionInTeam makes sure a question filed into a team other than the default one comes back from Linear:
// when that team is private and has no webhook of linsync's yet, the team webhooks are brought in step. The team is
// looked up in the client's cache, so a public team costs no request. Failures are logged; the next change of the
// defaults or rules, or a reconnect, tries again.
func (s *Server) afterQuestionInTeam(ctx context.Context, ws *linsync.Workspace, teamID string) {
	if s.cfg.PublicURL == "" || teamID == "" {
		return
	}
	lc, conn, err := s.linearFor(ctx, ws.ID)
	if err != nil || teamID == conn.DefaultTeamID {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t, err := lc.Team(lctx, teamID)
	if err != nil || t.Visibility == linear.TeamVisibilityPublic {
		return
	}
	hooks, err := s.db.ListLinearWebhooks(ctx, ws.ID)
	if err != nil {
		return
	}
	for _, h := range hooks {
		if h.Managed && h.TeamID == t.Id {
			return
		}
	}
	if _, err := s.syncTeamWebhooks(ctx, ws, conn, lc); err != nil {
		s.log.WarnContext(ctx, "webhook for a question's private team failed", "workspace_id", ws.ID, "team_id", teamID, "err", err)
	}
}

// teamWebhookSync says what syncTeamWebhooks changed.
type teamWebhookSync struct {
	Created []*linsync.WebhookRecord `json:"created"`
	Deleted []string                 `json:"deleted"`
}

// syncTeamWebhooks brings the workspace's team-scoped managed webhooks in step with the private teams it files into:
// one is created for each such team that has none, and one whose team is no longer filed into (or no longer
// private) is deleted in Linear and forgotten. It needs a public URL; without one it does nothing.
func (s *Server) syncTeamWebhooks(ctx context.Context, ws *linsync.Workspace, conn *linsync.LinearConnection, lc *linear.Client) (*teamWebhookSync, error) {
	out := &teamWebhookSync{Created: []*linsync.WebhookRecord{}, Deleted: []string{}}
	if s.cfg.PublicURL == "" {
		return out, nil
	}
	targets, err := s.filingTeams(ctx, ws.ID, conn)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	teams, err := lc.ListTeams(lctx)
	cancel()
	if err != nil {
		return nil, linearRefusal("list Linear teams", err)
	}
	// Targets may name a team by its key (a question's team_id); each is resolved to its id.
	private := map[string]bool{}
	ids := []string{}
	for _, t := range teams {
		if !slices.ContainsFunc(targets, func(x string) bool { return x == t.Id || strings.EqualFold(x, t.Key) }) {
			continue
		}
		ids = append(ids, t.Id)
		if t.Visibility != linear.TeamVisibilityPublic {
			private[t.Id] = true
		}
	}
	targets = ids
	hooks, err := s.db.ListLinearWebhooks(ctx, ws.ID)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, h := range hooks {
		if !h.Managed || h.TeamID == "" || h.OrganizationID != conn.OrganizationID {
			continue
		}
		if private[h.TeamID] {
			have[h.TeamID] = true
			continue
		}
		if err := s.deleteInLinear(ctx, ws.ID, h, lc); err != nil {
			return out, err
		}
		if err := s.db.DeleteLinearWebhook(ctx, ws.ID, h.ID); err != nil {
			return out, err
		}
		s.recordAccess(ctx, linsync.AccessEvent{WorkspaceID: ws.ID, ConnectionID: conn.ID, Kind: linsync.AccessWebhookDeleted,
			Outcome: linsync.AccessOutcomeOK, Detail: "team webhook " + h.ID + ": linsync no longer files into private team " + h.TeamID})
		out.Deleted = append(out.Deleted, h.ID)
	}
	for _, id := range targets {
		if !private[id] || have[id] {
			continue
		}
		rec, created, err := s.createManagedWebhook(ctx, ws, conn, lc, id)
		if err != nil {
			return out, err
		}
		if created {
			out.Created = append(out.Created, rec)
		}
	}
	return out, nil
}

// afterFilingTeamsChanged runs syncTeamWebhooks after the defaults or the routing rules changed and says what it did
// in the answer; a failure does not undo the change, the answer names it and the next change (or a connect) retries.
func (s *Server) afterFilingTeamsChanged(ctx context.Context, ws *linsync.Workspace, out gin.H) {
	lc, conn, err := s.linearFor(ctx, ws.ID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return
	}
	var sync *teamWebhookSync
	if err == nil {
		sync, err = s.syncTeamWebhooks(ctx, ws, conn, lc)
	}
	if err != nil {
		s.log.WarnContext(ctx, "sync team webhooks failed", "workspace_id", ws.ID, "err", err)
		out["team_webhooks_error"] = gin.H{"code": linsync.ErrorCode(err), "message": linsync.ErrorMessage(err)}
		return
	}
	out["team_webhooks"] = sync
}

// webhookView is a registered webhook with its scope and health: which teams it delivers for, whether Linear still
// has it enabled, and when it last delivered.
type webhookView struct {
	*linsync.WebhookRecord
	// Scope is "all_public_teams" or "team"; TeamKey and TeamName name the team of a team-scoped webhook.
	Scope    string `json:"scope"`
	TeamKey  string `json:"team_key,omitempty"`
	TeamName string `json:"team_name,omitempty"`
	Private  bool   `json:"team_private,omitempty"`
	// Health is ok, disabled (Linear stopped delivering), missing (Linear no longer has it), silent (no delivery
	// recorded yet) or unknown (Linear could not be asked, or the webhook is not one linsync manages).
	Health         string     `json:"health"`
	LinearEnabled  *bool      `json:"linear_enabled,omitempty"`
	LastDeliveryAt *time.Time `json:"last_delivery_at,omitempty"`
}

// handleListWebhooks lists the workspace's webhooks with scope and health; Linear is asked about the managed ones
// when the connection can.
func (s *Server) handleListWebhooks(c *gin.Context) {
	ws := workspaceOf(c)
	hooks, err := s.db.ListLinearWebhooks(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	last, err := s.db.LastDeliveries(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	teams := map[string]linear.TeamFields{}
	enabled := map[string]bool{}
	asked := false
	if lc, _, err := s.linearFor(c, ws.ID); err == nil {
		ctx, cancel := context.WithTimeout(c, 15*time.Second)
		if ts, err := lc.ListTeams(ctx); err == nil {
			for _, t := range ts {
				teams[t.Id] = t
			}
		}
		asked = true
		first := 100
		var after *string
		for {
			resp, err := linear.Webhooks(ctx, lc.GQL(), &first, after)
			if err != nil {
				asked = false
				break
			}
			for _, w := range resp.Webhooks.Nodes {
				enabled[w.Id] = w.Enabled
			}
			pi := resp.Webhooks.PageInfo
			if !pi.HasNextPage || pi.EndCursor == nil {
				break
			}
			after = pi.EndCursor
		}
		cancel()
	}
	out := make([]webhookView, 0, len(hooks))
	for _, h := range hooks {
		v := webhookView{WebhookRecord: h, Scope: "all_public_teams", Health: "unknown"}
		if h.TeamID != "" {
			v.Scope = "team"
			if t, ok := teams[h.TeamID]; ok {
				v.TeamKey, v.TeamName, v.Private = t.Key, t.Name, t.Visibility != linear.TeamVisibilityPublic
			}
		}
		if at, ok := last[h.LinearWebhookID]; ok && h.LinearWebhookID != "" {
			v.LastDeliveryAt = &at
		}
		if h.Managed && h.LinearWebhookID != "" && asked {
			on, ok := enabled[h.LinearWebhookID]
			switch {
			case !ok:
				v.Health = "missing"
			case !on:
				v.Health, v.LinearEnabled = "disabled", &on
			case v.LastDeliveryAt == nil:
				v.Health, v.LinearEnabled = "silent", &on
			default:
				v.Health, v.LinearEnabled = "ok", &on
			}
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"webhooks": out})
}
