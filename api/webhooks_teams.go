package api

import (
	"context"
	"encoding/json"

	"github.com/linsync/linsync"
)

// claimedBy matches a verified delivery to a workspace by its Linear team (seed 002's "workspace matching"), for
// organizations whose workspaces each claim some of its teams. v is the webhook whose secret verified the body. The
// delivery goes to the workspace that claims its team, when that workspace's own webhook secret verifies the body
// too (a workspace never receives what it would not have accepted itself); otherwise it stays with v's workspace,
// unless that workspace claims teams of its own, in which case the delivery is unclaimed: the returned team is
// non-empty and the delivery is recorded as such and handled by nothing. A body without a team, or an organization
// in which nobody claims teams, changes nothing.
func (s *Server) claimedBy(ctx context.Context, body []byte, sig, org, webhookID string, v linsync.WebhookVerifier) (linsync.WebhookVerifier, string, error) {
	if org == "" {
		return v, "", nil
	}
	// The claims are cached; the body is read for its team only when the organization has claims, so that an
	// organization without them (most) pays no third pass over every body.
	claims, err := s.claims.get(ctx, org, false)
	if err == nil && len(claims) == 0 {
		return v, "", nil
	}
	// Claims that cannot be read matter only to a body about a team.
	team := teamOfBody(body)
	switch {
	case team == "":
		return v, "", nil
	case err != nil:
		return v, "", err
	}
	owner, claimed := claims[team]
	if claimed && owner == v.WorkspaceID {
		return v, "", nil
	}
	if claimed {
		all, err := s.secrets.get(ctx, "org:"+org, false)
		if err != nil && linsync.ErrorCode(err) != linsync.ENOTFOUND {
			return v, "", err
		}
		var owners []*candidate
		for _, c := range all {
			if c.v.WorkspaceID == owner {
				owners = append(owners, c)
			}
		}
		// The owner's webhooks are chosen as ingress chooses them, so this check costs no more HMACs than that.
		for _, c := range chooseCandidates(owners, webhookID, org) {
			ok, err := s.signedBy(ctx, c, body, sig)
			if err != nil {
				return v, "", err
			}
			if ok {
				return c.verifier(), "", nil
			}
		}
	}
	for _, ws := range claims {
		if ws == v.WorkspaceID {
			return v, team, nil
		}
	}
	return v, "", nil
}

// teamOfBody finds the Linear team a webhook body is about: the entity's teamId or team, a comment's or reaction's
// issue's team, an IssueSLA's issueData; "" when the entity has none (a user, a customer, an OAuth revocation).
func teamOfBody(body []byte) string {
	type teamed struct {
		TeamID string `json:"teamId"`
		Team   *struct {
			ID string `json:"id"`
		} `json:"team"`
	}
	var probe struct {
		Data *struct {
			teamed
			Issue *teamed `json:"issue"`
		} `json:"data"`
		IssueData *teamed `json:"issueData"`
	}
	if json.Unmarshal(body, &probe) != nil {
		return ""
	}
	of := func(t *teamed) string {
		switch {
		case t == nil:
			return ""
		case t.TeamID != "":
			return t.TeamID
		case t.Team != nil:
			return t.Team.ID
		}
		return ""
	}
	if probe.Data != nil {
		if id := of(&probe.Data.teamed); id != "" {
			return id
		}
		return of(probe.Data.Issue)
	}
	return of(probe.IssueData)
}
