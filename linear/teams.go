package linear

import (
	"context"
	"fmt"
)

// ListTeams returns every team the credential can see, following pagination.
func (c *Client) ListTeams(ctx context.Context) ([]TeamFields, error) {
	var out []TeamFields
	var after *string
	first := 100
	for {
		resp, err := Teams(ctx, c, &first, after)
		if err != nil {
			return nil, fmt.Errorf("list teams: %w", err)
		}
		for _, n := range resp.Teams.Nodes {
			out = append(out, n.TeamFields)
		}
		pi := resp.Teams.PageInfo.PageInfoFields
		if !pi.HasNextPage || pi.EndCursor == nil {
			return out, nil
		}
		after = pi.EndCursor
	}
}
